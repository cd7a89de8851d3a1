"""Reading one CoinCap answer: its body, up to a size limit; the page of records and the
snapshot timestamp in it, or the ``CoinCapError`` saying why there are none; its ``Retry-After``.

What a page may hold is checked here once for every request the client makes: a body that is
not JSON (or is nested past the parser's recursion limit), an envelope without a list of
records, a v2 retirement notice, and a ``timestamp`` the warehouse could not store.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from shared.coincap.errors import MalformedResponse, ResponseTooLarge, RetiredApiVersion
from shared.schemas import ASSETS

BODY_ENCODING_HEADERS = ("content-encoding", "content-length", "transfer-encoding")
"""Headers that describe the body as sent; the body read here is already decoded."""

SNAPSHOT_TIME_RANGE_MS = ASSETS.column("source_timestamp").timestamp_range_ms
"""The epoch milliseconds a page ``timestamp`` may be: what the ``source_timestamp`` column
holds (BigQuery's TIMESTAMP range)."""


async def read_within_limit(streamed: httpx.Response, url: str, max_bytes: int) -> httpx.Response:
    """The answer with its body read, or ResponseTooLarge once the body (decompressed)
    passes ``max_bytes``: reading stops there, so memory holds at most that."""
    declared = streamed.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(url, max_bytes)
    body = bytearray()
    async for chunk in streamed.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise ResponseTooLarge(url, max_bytes)
    headers = [
        (name, value)
        for name, value in streamed.headers.items()
        if name.lower() not in BODY_ENCODING_HEADERS  # the body is already decoded
    ]
    return httpx.Response(
        streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (it may be a number or an HTTP date), or None when absent."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def page_from(url: str, response: httpx.Response) -> tuple[list[Any], int]:
    """The records and the timestamp of one answer, or the error saying why there are none; the
    timestamp within what the warehouse can store (its window around now is the client's)."""
    try:
        body = response.json()
    except RecursionError:
        # Python's parser recurses once per level: a few kilobytes of "[[[[..." reach its limit.
        raise MalformedResponse(
            url, "the body is JSON nested deeper than the parser's recursion limit"
        ) from None
    except ValueError:
        raise MalformedResponse(url, f"the body is not JSON: {response.text[:80]!r}") from None
    if not isinstance(body, dict) or "data" not in body:
        raise MalformedResponse(url, "the body has no 'data' field")
    data = body["data"]
    if isinstance(data, dict) and "message" in data:
        raise RetiredApiVersion(url, str(data["message"]))
    if not isinstance(data, list):
        raise MalformedResponse(url, f"'data' is {type(data).__name__}, not a list of records")
    timestamp = body.get("timestamp")
    # An int is compared as it is: one too large for a float (10**400 is valid JSON) would make
    # math.isfinite raise OverflowError.
    if (
        isinstance(timestamp, bool)
        or not isinstance(timestamp, int | float)
        or (isinstance(timestamp, float) and not math.isfinite(timestamp))
    ):
        raise MalformedResponse(
            url, f"'timestamp' is missing or not a number: {shortened(timestamp)}"
        )
    low, high = SNAPSHOT_TIME_RANGE_MS
    if not low <= timestamp <= high:
        raise MalformedResponse(
            url,
            f"'timestamp' {shortened(timestamp)} is outside BigQuery's TIMESTAMP range "
            f"({low} to {high} epoch milliseconds)",
        )
    return data, int(timestamp)


def shortened(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a page's timestamp may be anything."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
