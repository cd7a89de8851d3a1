"""What can go wrong when talking to CoinCap, as a small hierarchy callers catch at their level.

An ingestor catches ``QuotaExhausted`` to stop polling and say so, ``CoinCapUnavailable`` to try
again next cycle, and lets ``BadApiKey`` and ``RetiredApiVersion`` end the process: those need a
person to change the configuration. ``CoinCapError`` catches all of them.
"""

from __future__ import annotations

V3_BASE_URL = "https://rest.coincap.io/v3"


class CoinCapError(Exception):
    """Any failure to get a usable answer from CoinCap."""


class BadApiKey(CoinCapError):
    """CoinCap refused the API key (HTTP 401 or 403). Retrying cannot help."""

    def __init__(self, url: str, status_code: int) -> None:
        self.url = url
        self.status_code = status_code
        super().__init__(
            f"CoinCap answered HTTP {status_code} for {url}: bad or missing CoinCap API key; "
            "set COINSTREAM_COINCAP_API_KEY to a key from the CoinCap dashboard "
            "(or unset it to poll the bundled simulator)"
        )


class QuotaExhausted(CoinCapError):
    """CoinCap kept answering HTTP 429 after every retry: the credit quota or rate limit is spent.

    ``retry_after_seconds`` is the last ``Retry-After`` CoinCap sent, or None when it sent none.
    """

    def __init__(self, url: str, attempts: int, retry_after_seconds: float | None) -> None:
        self.url = url
        self.attempts = attempts
        self.retry_after_seconds = retry_after_seconds
        wait = (
            f"CoinCap asks to wait {retry_after_seconds:g} s"
            if retry_after_seconds is not None
            else "CoinCap sent no Retry-After"
        )
        super().__init__(
            f"CoinCap answered HTTP 429 Too Many Requests {attempts} time(s) for {url}; {wait}. "
            "The API credit quota is likely exhausted: stop polling until it resets, "
            "or poll less often / upgrade the CoinCap plan"
        )


class RetiredApiVersion(CoinCapError):
    """The URL points at CoinCap v2, which now answers every request with a deprecation notice."""

    def __init__(self, url: str, notice: str) -> None:
        self.url = url
        self.notice = notice
        super().__init__(
            f"{url} points at a retired CoinCap API version (it answered: {notice!r}); "
            f"set COINSTREAM_COINCAP_BASE_URL to {V3_BASE_URL} and use a v3 API key"
        )


class MalformedResponse(CoinCapError):
    """CoinCap answered, but not with the ``{"data": [...], "timestamp": <ms>}`` envelope."""

    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        self.problem = problem
        super().__init__(
            f"CoinCap's response from {url} is malformed: {problem}. "
            "Check that the URL is a CoinCap v3 endpoint; if it is, CoinCap changed its format"
        )


class CoinCapUnavailable(CoinCapError):
    """Server errors (5xx), timeouts or connection failures that outlasted every retry."""

    def __init__(self, url: str, attempts: int, last_problem: str) -> None:
        self.url = url
        self.attempts = attempts
        self.last_problem = last_problem
        super().__init__(
            f"CoinCap is unavailable at {url} after {attempts} attempt(s): {last_problem}. "
            "Check the network and the URL (or that the simulator is running); "
            "the next poll will try again"
        )


class UnexpectedStatus(CoinCapError):
    """An HTTP status no retry can fix and no other error covers, such as 404 for a wrong path."""

    def __init__(self, url: str, status_code: int, body: str) -> None:
        self.url = url
        self.status_code = status_code
        self.body = body
        super().__init__(
            f"CoinCap answered HTTP {status_code} for {url} (body: {body!r}); "
            f"check COINSTREAM_COINCAP_BASE_URL (expected {V3_BASE_URL}) and the request"
        )


class ResponseTooLarge(CoinCapError):
    """A response body over ``COINSTREAM_COINCAP_MAX_RESPONSE_BYTES``; reading stopped at the
    limit, so an endless or hostile body cannot fill memory. Retrying would fetch it again."""

    def __init__(self, url: str, limit_bytes: int) -> None:
        self.url = url
        self.limit_bytes = limit_bytes
        super().__init__(
            f"CoinCap's response from {url} is larger than {limit_bytes} bytes and was not read; "
            "lower COINSTREAM_COINCAP_PAGE_LIMIT, or raise COINSTREAM_COINCAP_MAX_RESPONSE_BYTES "
            "if such pages are expected"
        )
