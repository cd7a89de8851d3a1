"""The CoinCap client against our real simulator, served in-process: paging through a listing,
the page timestamp, the API key, and the answers that end a poll at once (a retired API version,
a wrong path, a server that ignores ``offset``)."""

from __future__ import annotations

import time

import httpx
import pytest

from services.coincap_simulator import create_app
from shared.coincap import (
    BadApiKey,
    CoinCapClient,
    MalformedResponse,
    RetiredApiVersion,
    UnexpectedStatus,
    validation_error,
)
from tests.harness.coincap_client import (
    ASSET_COUNT,
    BASE_URL,
    ResponseRecorder,
    SleepRecorder,
    add_fault,
    client_for,
    simulator,
)


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
