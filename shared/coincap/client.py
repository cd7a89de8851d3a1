"""Async client for CoinCap v3: pages through ``/assets`` and ``/exchanges`` and retries wisely.

Every request costs CoinCap credits, so the client retries only what a retry can fix (5xx,
timeouts, connection errors, a short burst of 429s honouring ``Retry-After``), fails at once on a
bad key or a retired API version, and stops paging after ``max_pages`` so that a server ignoring
``offset`` cannot burn a month's quota. A body is read up to ``max_response_bytes`` and no
further, so a huge or endless answer fails the poll instead of filling memory. Whatever the body
holds, a page either comes back or fails with a ``CoinCapError`` (``answers`` reads each one,
JSON nested past the parser's recursion limit included), and a page's own ``timestamp`` must be
a time the warehouse can store and lie within ``snapshot_time_window_hours`` of now, or the page
is a ``MalformedResponse``: every record of the page would carry that time. Records come back
raw: validating them is the caller's job (``shared.coincap.models``), because invalid records
still go to the dead-letter topic as sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from shared.coincap.answers import page_from, read_within_limit, retry_after_seconds
from shared.coincap.errors import (
    BadApiKey,
    CoinCapUnavailable,
    MalformedResponse,
    QuotaExhausted,
    ResponseTooLarge,
    UnexpectedStatus,
)
from shared.settings import CoinCapSettings

logger = logging.getLogger(__name__)

Endpoint = Literal["assets", "exchanges"]

ResponseObserver = Callable[[str, int | str, float], None]
"""Called after every HTTP attempt with (endpoint, status code, "error" or "too_large",
seconds taken)."""

MAX_PAGE_LIMIT = 2000
"""CoinCap's largest ``limit``."""

DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""A full page of 2000 assets is under 1 MB; eight times that is no listing CoinCap sends."""

DEFAULT_SNAPSHOT_TIME_WINDOW_HOURS: float = CoinCapSettings.model_fields[
    "snapshot_time_window_hours"
].default
"""``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS``'s default, for clients made without settings."""


@dataclass(frozen=True)
class FetchResult:
    """Every record of one endpoint, fetched page by page."""

    records: list[Any]
    """The raw items of every page, in the order CoinCap sent them."""
    timestamp_ms: int
    """The envelope ``timestamp`` of the first page: when CoinCap produced the snapshot."""
    requests: int
    """HTTP requests that succeeded, which is what CoinCap bills in credits."""


class _RetryableAnswer(Exception):
    """A 429 or 5xx answer, raised inside the retry loop so that tenacity can retry it."""

    def __init__(self, status_code: int, retry_after_seconds: float | None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds


class CoinCapClient:
    """Fetches complete CoinCap listings; one instance per process, closed with ``aclose``.

    ``http_client`` or ``transport`` let tests run against the simulator in-process. An injected
    ``http_client`` is not closed by ``aclose``: whoever made it owns it. ``sleep`` is what waits
    between retries (tests pass a recorder instead of ``asyncio.sleep``); ``clock`` (epoch
    seconds) is the "now" a page's ``timestamp`` must lie within ``snapshot_time_window_hours`` of.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        page_limit: int = MAX_PAGE_LIMIT,
        timeout_seconds: float = 10.0,
        max_retries: int = 5,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        retry_after_max_seconds: float = 60.0,
        max_pages: int = 50,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        snapshot_time_window_hours: float = DEFAULT_SNAPSHOT_TIME_WINDOW_HOURS,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_response: ResponseObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 1 <= page_limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit must be between 1 and {MAX_PAGE_LIMIT}, got {page_limit}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        if http_client is not None and transport is not None:
            raise ValueError("pass http_client or transport, not both")
        self.base_url = base_url.rstrip("/")
        self.page_limit = page_limit
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.max_pages = max_pages
        self.max_response_bytes = max_response_bytes
        self.snapshot_time_window_ms = snapshot_time_window_hours * 3_600_000
        self._clock = clock
        # A Retry-After longer than this is not a burst limit but a spent quota: waiting it out
        # inside one poll would stall the ingestor, so the client gives up at once instead.
        self.retry_after_max_seconds = retry_after_max_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial_seconds,
            max=backoff_max_seconds,
            jitter=backoff_initial_seconds,
        )
        self._headers = {"Accept": "application/json", "User-Agent": "coinstream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_http_client = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport)
        self._on_response = on_response
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls, settings: CoinCapSettings, *, on_response: ResponseObserver | None = None
    ) -> CoinCapClient:
        """A client for ``settings.coincap_url``: CoinCap with a key, else the local simulator."""
        api_key = settings.coincap_api_key
        return cls(
            settings.coincap_url,
            api_key.get_secret_value() if api_key is not None else None,
            page_limit=settings.coincap_page_limit,
            timeout_seconds=settings.coincap_timeout_seconds,
            max_retries=settings.coincap_max_retries,
            max_response_bytes=settings.coincap_max_response_bytes,
            snapshot_time_window_hours=settings.snapshot_time_window_hours,
            on_response=on_response,
        )

    async def fetch_all(self, endpoint: Endpoint) -> FetchResult:
        """Every record of ``endpoint``, paging with ``limit``/``offset`` until a short page.

        Raises a ``CoinCapError`` subclass when any page cannot be had; nothing partial is
        returned, so a poll either has the whole listing or nothing.
        """
        records: list[Any] = []
        first_timestamp_ms: int | None = None
        for page_number in range(self.max_pages):
            page, timestamp_ms = await self._fetch_page(endpoint, page_number * self.page_limit)
            if first_timestamp_ms is None:
                first_timestamp_ms = timestamp_ms
            records.extend(page)
            if len(page) < self.page_limit:
                return FetchResult(records, first_timestamp_ms, requests=page_number + 1)
        raise MalformedResponse(
            f"{self.base_url}/{endpoint}",
            f"still full pages after {self.max_pages} pages of {self.page_limit} records; "
            "the server may be ignoring 'offset' (raise max_pages if the listing is that long)",
        )

    async def fetch_history(
        self, asset_id: str, interval: str, start_ms: int, end_ms: int
    ) -> FetchResult:
        """The ``/assets/{asset_id}/history`` points from ``start_ms`` to ``end_ms``: one request.

        The same key, retries, 429 handling and errors as ``fetch_all``: a spent quota raises
        ``QuotaExhausted`` after the retries (or at once when ``Retry-After`` is long).
        """
        url = f"{self.base_url}/assets/{asset_id}/history"
        params: dict[str, int | str] = {"interval": interval, "start": start_ms, "end": end_ms}
        records, timestamp_ms = await self._get_page("history", url, params)
        return FetchResult(records, timestamp_ms, requests=1)

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _fetch_page(self, endpoint: Endpoint, offset: int) -> tuple[list[Any], int]:
        url = f"{self.base_url}/{endpoint}"
        return await self._get_page(endpoint, url, {"limit": self.page_limit, "offset": offset})

    async def _get_page(
        self, endpoint: Endpoint | Literal["history"], url: str, params: dict[str, int | str]
    ) -> tuple[list[Any], int]:
        """One page, with the retries, 429 handling and errors every request of ours has."""

        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            logger.warning(
                "GET %s %s failed: %s; retry %d of %d in %.2f s",
                url,
                params,
                self._describe_failure(error),
                state.attempt_number,
                self.max_retries,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait_before_retry,
            retry=retry_if_exception(self._is_worth_retrying),
            before_sleep=log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response: httpx.Response = await retrying(self._send, endpoint, url, params)
        except _RetryableAnswer as answer:
            attempts = retrying.statistics["attempt_number"]
            if answer.status_code == 429:
                raise QuotaExhausted(url, attempts, answer.retry_after_seconds) from None
            raise CoinCapUnavailable(url, attempts, self._describe_failure(answer)) from None
        except (httpx.TransportError, TimeoutError) as error:
            attempts = retrying.statistics["attempt_number"]
            raise CoinCapUnavailable(url, attempts, self._describe_failure(error)) from error
        return self._page_from(url, response)

    def _page_from(self, url: str, response: httpx.Response) -> tuple[list[Any], int]:
        """The records and the timestamp of one answer, or the error saying why there are none."""
        records, timestamp_ms = page_from(url, response)
        now_ms = self._clock() * 1000
        if abs(timestamp_ms - now_ms) > self.snapshot_time_window_ms:
            hours = (timestamp_ms - now_ms) / 3_600_000
            raise MalformedResponse(
                url,
                f"'timestamp' {timestamp_ms} is {abs(hours):.1f} h "
                f"{'ahead of' if hours > 0 else 'behind'} this machine's clock, outside "
                f"COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS "
                f"({self.snapshot_time_window_ms / 3_600_000:g} h); if the server's clock is "
                "right, check this machine's",
            )
        return records, timestamp_ms

    async def _send(
        self, endpoint: Endpoint | Literal["history"], url: str, params: dict[str, int | str]
    ) -> httpx.Response:
        """One HTTP attempt; raises what the retry policy and the caller act on."""
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each phase; this bounds the whole request, so a server that
            # drips bytes (or one served in-process, where httpx cannot time out) still ends.
            async with (
                asyncio.timeout(self.timeout_seconds),
                self._http.stream(
                    "GET", url, params=params, headers=self._headers, timeout=self.timeout_seconds
                ) as streamed,
            ):
                response = await read_within_limit(streamed, url, self.max_response_bytes)
        except (httpx.TransportError, TimeoutError):
            self._observe(endpoint, "error", time.perf_counter() - started)
            raise
        except ResponseTooLarge:
            self._observe(endpoint, "too_large", time.perf_counter() - started)
            raise
        self._observe(endpoint, response.status_code, time.perf_counter() - started)

        status = response.status_code
        if status in (401, 403):
            raise BadApiKey(url, status)
        if status == 429 or status >= 500:
            raise _RetryableAnswer(status, retry_after_seconds(response))
        if not 200 <= status < 300:
            raise UnexpectedStatus(url, status, response.text[:200])
        return response

    def _observe(
        self, endpoint: Endpoint | Literal["history"], status: int | str, seconds: float
    ) -> None:
        if self._on_response is not None:
            self._on_response(endpoint, status, seconds)

    def _is_worth_retrying(self, error: BaseException) -> bool:
        if isinstance(error, _RetryableAnswer):
            retry_after = error.retry_after_seconds
            return retry_after is None or retry_after <= self.retry_after_max_seconds
        return isinstance(error, httpx.TransportError | TimeoutError)

    def _wait_before_retry(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _RetryableAnswer) and error.retry_after_seconds is not None:
            return error.retry_after_seconds
        return self._backoff(state)

    def _describe_failure(self, error: BaseException | None) -> str:
        if isinstance(error, _RetryableAnswer):
            if error.retry_after_seconds is None:
                return f"HTTP {error.status_code}"
            return f"HTTP {error.status_code} (Retry-After {error.retry_after_seconds:g} s)"
        if isinstance(error, TimeoutError):
            return f"no complete answer within {self.timeout_seconds:g} s"
        if error is None:
            return "unknown failure"
        detail = str(error)
        return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
