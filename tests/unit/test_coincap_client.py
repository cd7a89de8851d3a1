"""The CoinCap client against our real simulator, served in-process through httpx.ASGITransport.

Waits between retries go to a recorder instead of ``asyncio.sleep``, so the tests can check that
``Retry-After`` was honoured without spending the time.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.coincap_simulator import create_app, load_universe
from shared.coincap import (
    BadApiKey,
    CoinCapClient,
    CoinCapUnavailable,
    MalformedResponse,
    QuotaExhausted,
    ResponseTooLarge,
    RetiredApiVersion,
    UnexpectedStatus,
    validation_error,
)
from shared.settings import Settings

pytestmark = pytest.mark.unit

BASE_URL = "http://simulator/v3"
ASSET_COUNT = len(load_universe()["assets"])


class SleepRecorder:
    """Stands in for asyncio.sleep: remembers each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class ResponseRecorder:
    """The client's observer: remembers (endpoint, status) of every HTTP attempt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str]] = []

    def __call__(self, endpoint: str, status: int | str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((endpoint, status))

    @property
    def statuses(self) -> list[int | str]:
        return [status for _, status in self.calls]


def simulator(**options: Any) -> FastAPI:
    # A long tick keeps the market still, so pages of one fetch come from one snapshot.
    return create_app(seed=7, tick_seconds=3600, **options)


def client_for(
    app: FastAPI,
    *,
    sleep: SleepRecorder | None = None,
    on_response: ResponseRecorder | None = None,
    base_url: str = BASE_URL,
    **options: Any,
) -> CoinCapClient:
    settings: dict[str, Any] = {
        "page_limit": 40,
        "max_retries": 3,
        "backoff_initial_seconds": 0.001,
        "backoff_max_seconds": 0.01,
        **options,
    }
    return CoinCapClient(
        base_url,
        transport=httpx.ASGITransport(app=app),
        sleep=sleep or SleepRecorder(),
        on_response=on_response,
        **settings,
    )


async def add_fault(app: FastAPI, **fault: Any) -> None:
    """Sets a fault knob through the simulator's own HTTP API."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as http:
        response = await http.post("/_simulator/faults", json=fault)
        response.raise_for_status()


async def test_fetch_all_pages_across_boundaries_without_duplicates() -> None:
    observer = ResponseRecorder()
    async with client_for(simulator(), on_response=observer) as client:
        result = await client.fetch_all("assets")

    ids = [record["id"] for record in result.records]
    assert len(ids) == ASSET_COUNT > 150
    assert len(set(ids)) == ASSET_COUNT
    assert [int(record["rank"]) for record in result.records] == list(range(1, ASSET_COUNT + 1))
    assert result.requests == -(-ASSET_COUNT // 40)  # 40, 40, 40, 40, then a short page
    assert observer.statuses == [200] * result.requests
    assert isinstance(result.timestamp_ms, int)


async def test_a_listing_that_fills_its_last_page_exactly_takes_one_more_request() -> None:
    async with client_for(simulator(), page_limit=20) as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40
    assert result.requests == 3  # 20, 20, then an empty page says it is over


async def test_timestamp_is_the_first_pages() -> None:
    now = [1_700_000_000.0]

    def clock() -> float:
        now[0] += 5  # every request lands in a later tick
        return now[0]

    page_timestamps: list[int] = []

    async def remember_timestamp(response: httpx.Response) -> None:
        await response.aread()
        page_timestamps.append(response.json()["timestamp"])

    app = create_app(seed=1, tick_seconds=1, clock=clock)
    # An injected http_client (here with a hook) is used as given and left open by the client.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), event_hooks={"response": [remember_timestamp]}
    ) as http:
        # The client's "now" is the simulator's, or its snapshots would be years old.
        async with CoinCapClient(
            BASE_URL, http_client=http, page_limit=40, clock=lambda: now[0]
        ) as client:
            result = await client.fetch_all("assets")
        assert not http.is_closed

    assert result.requests == len(page_timestamps) > 1
    assert page_timestamps == sorted(set(page_timestamps))
    assert result.timestamp_ms == page_timestamps[0]


async def test_api_key_is_sent_as_a_bearer_token() -> None:
    app = simulator(api_key="secret-key")
    async with client_for(app, api_key="secret-key") as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
async def test_a_bad_or_missing_key_fails_at_once(api_key: str | None) -> None:
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    app = simulator(api_key="secret-key")
    async with client_for(app, api_key=api_key, on_response=observer, sleep=sleep) as client:
        with pytest.raises(BadApiKey, match="COINSTREAM_COINCAP_API_KEY"):
            await client.fetch_all("assets")
    assert observer.statuses == [401]
    assert sleep.waits == []


async def test_rate_limit_is_retried_after_retry_after_seconds() -> None:
    app = simulator()
    await add_fault(app, mode="rate_limit", count=2, retry_after=1)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        result = await client.fetch_all("assets")

    assert len(result.records) == ASSET_COUNT
    assert sleep.waits == [1.0, 1.0]
    assert observer.statuses[:3] == [429, 429, 200]
    assert result.requests == observer.statuses.count(200)


async def test_rate_limit_without_retry_after_backs_off_within_bounds() -> None:
    app = simulator()
    await add_fault(app, mode="rate_limit", count=2)
    sleep = SleepRecorder()
    async with client_for(app, sleep=sleep) as client:
        await client.fetch_all("exchanges")
    assert len(sleep.waits) == 2
    assert all(0 < wait <= 0.01 for wait in sleep.waits)


async def test_persistent_429_raises_quota_exhausted_after_the_retries() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted", retry_after=2)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep, max_retries=3) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("assets")

    assert caught.value.retry_after_seconds == 2.0
    assert caught.value.attempts == 4
    assert observer.statuses == [429] * 4
    assert sleep.waits == [2.0] * 3


async def test_quota_exhausted_without_retry_after_carries_none() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted")
    async with client_for(app, max_retries=1) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("exchanges")
    assert caught.value.retry_after_seconds is None


async def test_a_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    app = simulator()
    await add_fault(app, mode="quota_exhausted", retry_after=3600)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        with pytest.raises(QuotaExhausted) as caught:
            await client.fetch_all("assets")
    assert caught.value.retry_after_seconds == 3600
    assert observer.statuses == [429]
    assert sleep.waits == []


async def test_server_errors_are_retried_then_succeed() -> None:
    app = simulator()
    await add_fault(app, mode="server_error", count=2, status=503)
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    async with client_for(app, on_response=observer, sleep=sleep) as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40
    assert observer.statuses[:3] == [503, 503, 200]
    assert len(sleep.waits) == 2


async def test_persistent_server_errors_raise_unavailable() -> None:
    app = simulator()
    await add_fault(app, mode="server_error", count=None)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer, max_retries=2) as client:
        with pytest.raises(CoinCapUnavailable, match="HTTP 500") as caught:
            await client.fetch_all("assets")
    assert caught.value.attempts == 3
    assert observer.statuses == [500, 500, 500]


async def test_a_slow_answer_times_out_and_is_retried() -> None:
    app = simulator()
    await add_fault(app, mode="slow", seconds=5, count=1)
    observer = ResponseRecorder()
    async with client_for(app, on_response=observer, timeout_seconds=0.05) as client:
        result = await client.fetch_all("exchanges")
    assert len(result.records) == 40
    assert observer.statuses[:2] == ["error", 200]


async def test_connection_errors_raise_unavailable_after_the_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    observer = ResponseRecorder()
    sleep = SleepRecorder()
    client = CoinCapClient(
        f"http://127.0.0.1:{port}/v3",
        max_retries=2,
        on_response=observer,
        sleep=sleep,
        backoff_initial_seconds=0.001,
    )
    async with client:
        with pytest.raises(CoinCapUnavailable, match="ConnectError") as caught:
            await client.fetch_all("assets")
    assert caught.value.attempts == 3
    assert observer.statuses == ["error"] * 3
    assert len(sleep.waits) == 2


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


async def test_the_v2_retirement_payload_raises_retired_api_version() -> None:
    app = simulator()
    await add_fault(app, mode="retired_v2")
    async with client_for(app) as client:
        with pytest.raises(RetiredApiVersion, match=r"https://rest\.coincap\.io/v3"):
            await client.fetch_all("assets")


async def test_a_client_pointed_at_v2_raises_retired_api_version() -> None:
    async with client_for(simulator(), base_url="http://simulator/v2") as client:
        with pytest.raises(RetiredApiVersion, match="retired CoinCap API version"):
            await client.fetch_all("exchanges")


async def test_a_wrong_path_raises_unexpected_status() -> None:
    async with client_for(simulator(), base_url="http://simulator/v9") as client:
        with pytest.raises(UnexpectedStatus, match="HTTP 404"):
            await client.fetch_all("assets")


async def test_a_record_missing_its_id_is_returned_and_fails_validation() -> None:
    app = simulator()
    await add_fault(app, mode="missing_id", endpoint="assets")
    async with client_for(app) as client:
        result = await client.fetch_all("assets")

    reasons = [validation_error("assets", record) for record in result.records]
    assert len(result.records) == ASSET_COUNT
    assert reasons.count("missing required field 'id'") == 1
    assert reasons.count(None) == ASSET_COUNT - 1


async def test_a_server_ignoring_offset_cannot_page_forever() -> None:
    page = {"data": [{"id": "bitcoin"}] * 40, "timestamp": int(time.time() * 1000)}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=page))
    async with CoinCapClient(BASE_URL, transport=transport, page_limit=40, max_pages=3) as client:
        with pytest.raises(MalformedResponse, match="ignoring 'offset'"):
            await client.fetch_all("assets")


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="page_limit"):
        CoinCapClient(BASE_URL, page_limit=2001)
    with pytest.raises(ValueError, match="max_retries"):
        CoinCapClient(BASE_URL, max_retries=-1)


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
