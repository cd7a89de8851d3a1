"""Fault knobs: make the simulator misbehave on demand the ways CoinCap does.

Set them with ``--fault JSON`` (repeatable) or ``POST /_simulator/faults`` with one JSON object:

    {"mode": "rate_limit", "count": 2, "retry_after": 1}   429, with Retry-After when given
    {"mode": "quota_exhausted"}                            429 on every request until cleared
    {"mode": "server_error", "count": 3, "status": 500}    HTTP 5xx (status 500..599)
    {"mode": "slow", "seconds": 2, "count": 1}             answer normally after a delay
    {"mode": "malformed_json", "count": 1}                 200 with a truncated JSON body
    {"mode": "missing_id", "count": 1}                     the first record lacks id/exchangeId
    {"mode": "retired_v2", "count": 1}                     200 with the v2 retirement payload
    {"mode": "oversized_body", "size_bytes": 10000000}     200 with a body of that many bytes
    {"mode": "absurd_values", "count": 1}                  the first records carry absurd values
    {"mode": "poison", "count": 1}                         the first records carry poison
    {"mode": "poison_page", "poison": "timestamp"}         the whole page is poison: its
                                                           timestamp is 1e16 ("nesting": one
                                                           record nests 100,000 levels deep)

Every knob also takes ``"endpoint": "assets" | "exchanges" | "history"`` to affect one endpoint
only (``history`` is ``/assets/{id}/history``; ``absurd_values`` applies to the listings only).
``absurd_values`` gives each of a listing page's first records one value no asset or exchange
can have, in CoinCap's wire format (``ABSURD_VALUES``: a negative supply, rank "0", a price of
"1e400" or "NaN", ...); the served log names those records (``/_simulator/served``).
``poison`` gives each of a page's first records, beside healthy ones, one value that once
stopped an ingestor (``POISON_VALUES``: an exchange ``updated`` of 9999999999999999, a lone
surrogate escape ``"\\ud800"``, a 2 MB ``explorer``, an extra field that makes the record larger
than Kafka's 1 MiB, a field nested 200 levels deep, a 300-character id; for history, a point
``time`` of 9999999999999999): each is owed to the dead-letter topic, and the served log names
them (``poison``). ``poison_page`` spoils a whole page instead (``PAGE_POISONS``), which the
ingestors refuse as malformed: it is not in the served log, as none of its records is owed.
``count`` is how many requests it affects (default 1; quota_exhausted defaults to until cleared;
``null`` means until cleared). Knobs form a queue: each /v3 request (after the API-key check)
takes the first knob that matches its endpoint, so ``rate_limit`` x2 then ``server_error`` x1
answers 429, 429, 500, then normally. ``DELETE /_simulator/faults`` clears them all. The queue
holds at most ``MAX_QUEUED_FAULTS`` knobs; adding one more answers 409.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, Self

from fastapi import HTTPException, Response, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.coincap_simulator.models import Endpoint, error_response, retirement_notice

FaultMode = Literal[
    "rate_limit",
    "quota_exhausted",
    "server_error",
    "slow",
    "malformed_json",
    "missing_id",
    "retired_v2",
    "oversized_body",
    "absurd_values",
    "poison",
    "poison_page",
]

PagePoison = Literal["timestamp", "nesting"]
"""What a ``poison_page`` knob spoils: the page's ``timestamp`` (1e16, beyond BigQuery's
TIMESTAMP range), or the JSON itself (one record's field nested 100,000 levels deep, about 200 KB:
past any recursive parser's limit, far under the response cap)."""

PAGE_POISON_TIMESTAMP = 1e16
PAGE_POISON_NESTING_DEPTH = 100_000

MAX_QUEUED_FAULTS = 1000
"""More knobs than any test needs; a script adding them in a loop gets a 409, not a leak."""

_PADDING_CHUNK_BYTES = 64 * 1024

RECORD_KEYS: dict[Endpoint, str] = {"assets": "id", "exchanges": "exchangeId", "history": "time"}
"""The field that names a record, which ``missing_id`` drops (a history point's ``time``)."""

ABSURD_VALUES: dict[Endpoint, tuple[tuple[str, str], ...]] = {
    "assets": (
        ("supply", "-19788862.0000000000000000"),
        ("rank", "0"),
        ("priceUsd", "1e400"),
        ("priceUsd", "NaN"),
        ("marketCapUsd", "-1904557171625.0952172577833640"),
        ("rank", "1e3"),
    ),
    "exchanges": (
        ("rank", "0"),
        ("percentTotalVolume", "-2.946801735133553120000000000000000000"),
        ("volumeUsd", "1e400"),
        ("volumeUsd", "NaN"),
        ("tradingPairs", "-52"),
    ),
}
"""What ``absurd_values`` sets, one (field, value) per record from a page's first record on."""


def _nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep, built without recursion: ``[[[...]]]``."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


_TWO_MEGABYTES_OF_URL = "https://explorer.invalid/" + "x" * 2_000_000
_OVER_KAFKA_LIMIT = {"padding": "x" * 1_100_000}
_DEEP = _nested(200)
_LONG_ID = "poison-" + "x" * 300

POISON_VALUES: dict[Endpoint, tuple[tuple[str, Any], ...]] = {
    "assets": (
        ("name", "\ud800"),
        ("explorer", _TWO_MEGABYTES_OF_URL),
        ("tokens", _OVER_KAFKA_LIMIT),
        ("tokens", _DEEP),
        ("id", _LONG_ID),
        ("tokens", {"\udc00ethereum": ["0x0"]}),
    ),
    "exchanges": (
        ("updated", 9_999_999_999_999_999),
        ("name", "\ud800"),
        ("exchangeUrl", _TWO_MEGABYTES_OF_URL),
        ("notes", _OVER_KAFKA_LIMIT),
        ("notes", _DEEP),
        ("exchangeId", _LONG_ID),
    ),
    "history": (
        ("time", 9_999_999_999_999_999),
        ("date", "\ud800"),
    ),
}
"""What ``poison`` sets, one (field, value) per record from a page's first record on: values
outside their domain that once failed a poll, a send or a batch (a lone surrogate fails UTF-8
encoding; a 2 MB record fails Kafka's 1 MiB; 9999999999999999 ms overflows Spark's
``timestamp_millis``), and ones no column declares (an extra field's size, depth, or a lone
surrogate in its name). Each page holding all of them is under 8 MiB, the ingestors' cap."""


class Fault(BaseModel):
    """One fault knob; ``count`` is how many more requests it affects (None: until cleared)."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    count: int | None = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    seconds: float = Field(default=1.0, ge=0, le=600)
    status: int = Field(default=500, ge=500, le=599)
    size_bytes: int = Field(default=10_000_000, ge=1, le=100_000_000)
    poison: PagePoison = "timestamp"
    """``poison_page`` only: what it spoils."""
    endpoint: Endpoint | None = None

    @model_validator(mode="after")
    def _quota_lasts_until_cleared(self) -> Self:
        if self.mode == "quota_exhausted" and "count" not in self.model_fields_set:
            self.count = None
        return self

    @model_validator(mode="after")
    def _absurd_values_in_listings_only(self) -> Self:
        if self.mode == "absurd_values" and self.endpoint == "history":
            raise ValueError("absurd_values applies to the assets and exchanges listings only")
        return self


class FaultList(BaseModel):
    """The knobs still queued, in the order requests will take them."""

    faults: list[Fault]


class ClearedFaults(BaseModel):
    """How many knobs ``DELETE /_simulator/faults`` removed; none are left."""

    cleared: int
    faults: list[Fault] = Field(default_factory=list)


class FaultQueueFull(HTTPException):
    """The queue holds ``MAX_QUEUED_FAULTS`` knobs already: a 409 saying what to do."""

    def __init__(self) -> None:
        super().__init__(
            status.HTTP_409_CONFLICT,
            detail=f"the simulator already holds {MAX_QUEUED_FAULTS} fault knobs; clear them "
            "(DELETE /_simulator/faults) or use count to repeat one knob",
        )


class FaultQueue:
    """The active fault knobs, taken in order by the requests they match; at most
    ``MAX_QUEUED_FAULTS`` of them."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._faults: list[Fault] = []
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> None:
        """Queue ``fault``; FaultQueueFull (a 409) when the queue is full."""
        if len(self._faults) >= MAX_QUEUED_FAULTS:
            raise FaultQueueFull()
        self._faults.append(fault.model_copy())

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def take(self, endpoint: Endpoint) -> Fault | None:
        """The fault this request suffers, if any, counting it against the knob."""
        for fault in self._faults:
            if fault.endpoint in (None, endpoint):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def listed(self) -> FaultList:
        """The knobs as they stand now (copies: taking a knob later does not change them)."""
        return FaultList(faults=[fault.model_copy() for fault in self._faults])


async def hold_back(fault: Fault | None) -> None:
    """Delay the answer as a ``slow`` knob says; every other knob answers at once."""
    if fault is not None and fault.mode == "slow":
        await asyncio.sleep(fault.seconds)


def replacement_response(fault: Fault | None, timestamp_ms: int) -> Response | None:
    """The answer a fault replaces the normal one with; None for faults that only alter it."""
    if fault is None:
        return None
    if fault.mode in ("rate_limit", "quota_exhausted"):
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        message = (
            "Monthly API credit quota exhausted (simulated)"
            if fault.mode == "quota_exhausted"
            else "Too many requests (simulated rate limit)"
        )
        return error_response(message, 429, timestamp_ms, headers)
    if fault.mode == "server_error":
        return error_response("Internal server error (simulated)", fault.status, timestamp_ms)
    if fault.mode == "malformed_json":
        truncated = '{"data": [{"id": "bitcoin", "rank": "1", "sym'
        return Response(truncated, status_code=200, media_type="application/json")
    if fault.mode == "retired_v2":
        return JSONResponse(retirement_notice(timestamp_ms))
    if fault.mode == "oversized_body":
        return StreamingResponse(
            _oversized_body(fault.size_bytes, timestamp_ms), media_type="application/json"
        )
    return None


async def _oversized_body(size_bytes: int, timestamp_ms: int) -> AsyncIterator[bytes]:
    """A valid envelope padded to ``size_bytes``, sent in chunks so the simulator holds none
    of it: a client that stops reading stops the sending."""
    head = f'{{"timestamp": {timestamp_ms}, "data": [], "padding": "'.encode()
    tail = b'"}'
    yield head
    remaining = max(0, size_bytes - len(head) - len(tail))
    while remaining > 0:
        chunk = min(remaining, _PADDING_CHUNK_BYTES)
        yield b"x" * chunk
        remaining -= chunk
    yield tail


def altered_records(
    fault: Fault | None, endpoint: Endpoint, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The page's records as the fault leaves them: ``missing_id`` drops the first one's key,
    ``absurd_values`` gives the first ones an absurd value each (``ABSURD_VALUES``), ``poison``
    a poison value each (``POISON_VALUES``)."""
    if fault is None or not records:
        return records
    if fault.mode == "missing_id":
        key = RECORD_KEYS[endpoint]
        return [{name: value for name, value in records[0].items() if name != key}, *records[1:]]
    if fault.mode in ("absurd_values", "poison"):
        values = (ABSURD_VALUES if fault.mode == "absurd_values" else POISON_VALUES).get(
            endpoint, ()
        )
        return [
            record | dict([values[number]]) if number < len(values) else record
            for number, record in enumerate(records)
        ]
    return records


def absurd_record_count(fault: Fault | None, endpoint: Endpoint, records: int) -> int:
    """How many of a page's ``records`` (from the first) ``fault`` made absurd."""
    if fault is None or fault.mode != "absurd_values":
        return 0
    return min(records, len(ABSURD_VALUES.get(endpoint, ())))


def poison_record_count(fault: Fault | None, endpoint: Endpoint, records: int) -> int:
    """How many of a page's ``records`` (from the first) ``fault`` poisoned."""
    if fault is None or fault.mode != "poison":
        return 0
    return min(records, len(POISON_VALUES[endpoint]))


class EscapedJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped, as CoinCap may send it: so a lone surrogate
    in a poison value goes out as the escape ``"\\ud800"`` (UTF-8 cannot carry it raw)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def page_response(
    fault: Fault | None, records: list[dict[str, Any]], timestamp_ms: int
) -> Response:
    """The 200 answer carrying ``records``; a ``poison_page`` knob spoils it as it says."""
    if fault is None or fault.mode != "poison_page":
        return EscapedJSONResponse({"data": records, "timestamp": timestamp_ms})
    if fault.poison == "timestamp":
        return EscapedJSONResponse({"data": records, "timestamp": PAGE_POISON_TIMESTAMP})
    # Nesting no JSON encoder of ours could write: spliced in as text.
    marker = "__poison_nesting__"
    first = [{**records[0], "nested": marker}] if records else [{"nested": marker}]
    text = json.dumps({"data": [*first, *records[1:]], "timestamp": timestamp_ms})
    depth = PAGE_POISON_NESTING_DEPTH
    body = text.replace(json.dumps(marker), "[" * depth + "]" * depth, 1)
    return Response(body, status_code=200, media_type="application/json")
