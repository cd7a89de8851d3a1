"""The CoinCap client against answers no CoinCap should send: bodies that are not JSON or not a
page, poison pages, page timestamps out of range or outside the snapshot window, and bodies past
the size cap. Each fails the poll with a ``CoinCapError``, once, and never crashes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.coincap import (
    CoinCapClient,
    MalformedResponse,
    ResponseTooLarge,
)
from shared.settings import Settings
from tests.harness.coincap_client import (
    ASSET_COUNT,
    BASE_URL,
    ResponseRecorder,
    add_fault,
    client_for,
    simulator,
)


async def test_malformed_json_raises_malformed_response_without_retrying() -> None:
    app = simulator()
    await add_fault(app, mode="malformed_json")
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer) as client:
        with pytest.raises(MalformedResponse, match="not JSON"):
            await client.fetch_all("assets")
    assert observer.statuses == [200]


@pytest.mark.parametrize(
    ("respond", "problem"),
    [
        (lambda: httpx.Response(200, json=[1, 2]), "no 'data' field"),
        (lambda: httpx.Response(200, json={"data": "x", "timestamp": 1}), "'data' is str"),
        (lambda: httpx.Response(200, json={"data": []}), "'timestamp' is missing"),
        (lambda: httpx.Response(200, json={"data": [], "timestamp": "1"}), "not a number"),
        # Valid JSON, and an int no float holds: math.isfinite raised OverflowError on it.
        (
            lambda: httpx.Response(200, content=b'{"data": [], "timestamp": 1' + b"0" * 400 + b"}"),
            "outside BigQuery's TIMESTAMP range",
        ),
    ],
)
async def test_envelopes_that_are_not_coincap_raise_malformed_response(
    respond: Callable[[], httpx.Response], problem: str
) -> None:
    # The simulator never sends these, so a stub transport stands in for a broken server.
    transport = httpx.MockTransport(lambda request: respond())
    async with CoinCapClient(BASE_URL, transport=transport) as client:
        with pytest.raises(MalformedResponse, match=problem):
            await client.fetch_all("assets")


@pytest.mark.parametrize(
    ("poison", "problem"),
    [
        # 1e16 ms is year 318,857: past BigQuery's TIMESTAMP range (and Spark's timestamp_millis).
        ("timestamp", "'timestamp' 1e\\+16 is outside BigQuery's TIMESTAMP range"),
        # 100,000 levels of "[": Python's parser raises RecursionError, not a ValueError.
        ("nesting", "nested deeper than the parser's recursion limit"),
    ],
)
async def test_a_poison_page_is_a_malformed_response_not_a_crash(poison: str, problem: str) -> None:
    app = simulator()
    await add_fault(app, mode="poison_page", poison=poison)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer) as client:
        with pytest.raises(MalformedResponse, match=problem):
            await client.fetch_all("assets")
    assert observer.statuses == [200]  # refused whole, not asked again


@pytest.mark.parametrize(
    ("hours_from_now", "accepted"),
    [(0.0, True), (-719.0, True), (719.0, True), (-721.0, False), (24 * 365.0, False)],
)
async def test_a_page_timestamp_must_lie_within_the_snapshot_window_around_now(
    hours_from_now: float, accepted: bool
) -> None:
    now = 1_800_000_000.0
    timestamp = int((now + hours_from_now * 3600) * 1000)
    page = {"data": [{"id": "bitcoin"}], "timestamp": timestamp}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=page))
    async with CoinCapClient(BASE_URL, transport=transport, clock=lambda: now) as client:
        if accepted:
            assert (await client.fetch_all("assets")).timestamp_ms == timestamp
        else:
            with pytest.raises(MalformedResponse, match="COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS"):
                await client.fetch_all("assets")


async def test_the_snapshot_window_comes_from_the_settings() -> None:
    settings = Settings(_env_file=None, snapshot_time_window_hours=1000)
    client = CoinCapClient.from_settings(settings)
    assert client.snapshot_time_window_ms == 1000 * 3_600_000
    await client.aclose()


async def test_a_body_over_the_cap_is_refused_counted_and_not_retried() -> None:
    app = simulator()
    await add_fault(app, mode="oversized_body", size_bytes=2_000_000)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer, max_response_bytes=1_000_000) as client:
        with pytest.raises(ResponseTooLarge) as refused:
            await client.fetch_all("assets")
        assert "1000000 bytes" in str(refused.value)
        assert "COINSTREAM_COINCAP_MAX_RESPONSE_BYTES" in str(refused.value)
        assert observer.statuses == ["too_large"]  # counted, and not fetched again
        # The next poll, under the cap, works.
        assert len((await client.fetch_all("assets")).records) == ASSET_COUNT


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    read: list[int] = []

    def oversized(request: httpx.Request) -> httpx.Response:
        async def body() -> Any:
            read.append(1)
            yield b"{}"

        return httpx.Response(200, headers={"Content-Length": "50000000"}, content=body())

    transport = httpx.MockTransport(oversized)
    async with CoinCapClient(BASE_URL, transport=transport, max_response_bytes=1024) as client:
        with pytest.raises(ResponseTooLarge):
            await client.fetch_all("assets")
    assert read == []
