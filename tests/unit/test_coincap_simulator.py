"""The CoinCap simulator: its wire format, its market's invariants, its fault knobs and its CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services import coincap_simulator as simulator
from services.coincap_simulator import create_app, load_universe
from services.coincap_simulator.faults import MAX_QUEUED_FAULTS
from shared.coincap.models import validation_error

START = 1_700_000_000.0
TICK_SECONDS = 10.0


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def http_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://simulator")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with http_for(create_app(seed=42, tick_seconds=TICK_SECONDS, clock=clock)) as client:
        yield client


async def all_records(http: httpx.AsyncClient, endpoint: str) -> tuple[list[dict[str, Any]], int]:
    response = await http.get(f"/v3/{endpoint}", params={"limit": 2000})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "timestamp"}
    return body["data"], body["timestamp"]


def numeric_texts(record: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    return [record[field] for field in fields if record[field] is not None]


ASSET_NUMBERS = (
    "supply",
    "maxSupply",
    "marketCapUsd",
    "volumeUsd24Hr",
    "priceUsd",
    "changePercent24Hr",
    "vwap24Hr",
)
EXCHANGE_NUMBERS = ("percentTotalVolume", "volumeUsd")


def check_asset_invariants(assets: list[dict[str, Any]]) -> None:
    for asset in assets:
        assert validation_error("assets", asset) is None, asset
        assert isinstance(asset["rank"], str)
        assert asset["tokens"] == {}
        for text in numeric_texts(asset, ASSET_NUMBERS):
            assert isinstance(text, str)
            assert "e" not in text.lower(), f"{asset['id']}: {text} is in exponent notation"
        price, supply = Decimal(asset["priceUsd"]), Decimal(asset["supply"])
        # Market cap is written with 16 decimals, so it is price x supply to within 5e-17.
        assert abs(Decimal(asset["marketCapUsd"]) - price * supply) <= Decimal("5e-17")
    assert [int(asset["rank"]) for asset in assets] == list(range(1, len(assets) + 1))
    market_caps = [Decimal(asset["marketCapUsd"]) for asset in assets]
    assert market_caps == sorted(market_caps, reverse=True)


def check_exchange_invariants(exchanges: list[dict[str, Any]], timestamp: int) -> None:
    for exchange in exchanges:
        assert validation_error("exchanges", exchange) is None, exchange
        assert isinstance(exchange["rank"], str)
        assert isinstance(exchange["tradingPairs"], str)
        assert exchange["updated"] == timestamp
        assert exchange["socket"] in (True, False, None)
        for text in numeric_texts(exchange, EXCHANGE_NUMBERS):
            assert "e" not in text.lower()
    assert [int(exchange["rank"]) for exchange in exchanges] == list(range(1, len(exchanges) + 1))
    percents = [Decimal(e["percentTotalVolume"]) for e in exchanges if e["percentTotalVolume"]]
    assert abs(sum(percents, Decimal(0)) - 100) < Decimal("1e-20")
    volumes = [Decimal(e["volumeUsd"]) if e["volumeUsd"] else Decimal(-1) for e in exchanges]
    assert volumes == sorted(volumes, reverse=True)  # no volume ranks last


def test_the_universe_is_real_names_with_tiny_prices_and_open_supplies() -> None:
    universe = load_universe()
    assets, exchanges = universe["assets"], universe["exchanges"]
    assert len(assets) >= 150
    assert len(exchanges) == 40
    assert len({asset["id"] for asset in assets}) == len(assets)
    assert {"bitcoin", "ethereum", "tether"} <= {asset["id"] for asset in assets}
    assert {"binance", "coinbase", "kraken"} <= {exchange["exchangeId"] for exchange in exchanges}
    prices = [Decimal(asset["priceUsd"]) for asset in assets]
    assert sum(price < Decimal("1e-6") for price in prices) >= 3
    assert any(price < Decimal("1e-9") for price in prices)
    assert any(asset["maxSupply"] is None for asset in assets)
    for asset in assets:
        if asset["maxSupply"] is not None:
            assert Decimal(asset["supply"]) <= Decimal(asset["maxSupply"]), asset["id"]


async def test_assets_speak_coincap_v3_and_keep_their_invariants(
    http: httpx.AsyncClient,
) -> None:
    assets, timestamp = await all_records(http, "assets")
    assert len(assets) == len(load_universe()["assets"])
    assert timestamp == int(START * 1000)
    check_asset_invariants(assets)
    assert set(assets[0]) == {
        "id", "rank", "symbol", "name", "supply", "maxSupply", "marketCapUsd", "volumeUsd24Hr",
        "priceUsd", "changePercent24Hr", "vwap24Hr", "explorer", "tokens",
    }  # fmt: skip
    assert any(asset["maxSupply"] is None for asset in assets)
    assert any(asset["vwap24Hr"] is None for asset in assets)
    assert any(asset["explorer"] is None for asset in assets)


async def test_tiny_prices_are_written_in_full(http: httpx.AsyncClient) -> None:
    assets, _ = await all_records(http, "assets")
    tiny = [asset["priceUsd"] for asset in assets if Decimal(asset["priceUsd"]) < Decimal("1e-9")]
    assert tiny
    for price in tiny:
        assert price.startswith("0.000000000")
        significant = price.lstrip("0.")
        assert len(significant) >= 16  # tiny prices keep their precision too


async def test_exchanges_speak_coincap_v3_and_keep_their_invariants(
    http: httpx.AsyncClient,
) -> None:
    exchanges, timestamp = await all_records(http, "exchanges")
    assert len(exchanges) == 40
    check_exchange_invariants(exchanges, timestamp)
    assert any(exchange["volumeUsd"] is None for exchange in exchanges)
    assert any(exchange["socket"] is None for exchange in exchanges)


async def test_ticks_move_the_market_and_advance_the_timestamp(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    before, first_timestamp = await all_records(http, "assets")
    clock.now += TICK_SECONDS / 2  # within the same tick: nothing moves
    same, same_timestamp = await all_records(http, "assets")
    assert (same, same_timestamp) == (before, first_timestamp)

    clock.now += TICK_SECONDS * 3
    after, later_timestamp = await all_records(http, "assets")
    exchanges, exchange_timestamp = await all_records(http, "exchanges")

    assert later_timestamp == first_timestamp + 3 * int(TICK_SECONDS * 1000)
    assert exchange_timestamp == later_timestamp
    price_before = {asset["id"]: asset["priceUsd"] for asset in before}
    assert sum(asset["priceUsd"] != price_before[asset["id"]] for asset in after) > 100
    check_asset_invariants(after)
    check_exchange_invariants(exchanges, exchange_timestamp)

    clock.now += 86_400  # a day idle moves the market once, and still keeps the invariants
    assets, _ = await all_records(http, "assets")
    check_asset_invariants(assets)
    stablecoin = next(asset for asset in assets if asset["id"] == "tether")
    assert abs(Decimal(stablecoin["priceUsd"]) - 1) < Decimal("0.01")


async def test_the_same_seed_gives_the_same_market() -> None:
    records = []
    for _ in range(2):
        async with http_for(create_app(seed=5, tick_seconds=1, clock=FakeClock())) as http:
            records.append(await all_records(http, "assets"))
    assert records[0] == records[1]


async def test_paging_ids_and_search(http: httpx.AsyncClient) -> None:
    everything, _ = await all_records(http, "assets")
    page = (await http.get("/v3/assets", params={"limit": 10, "offset": 5})).json()["data"]
    assert page == everything[5:15]
    default_page = (await http.get("/v3/assets")).json()["data"]
    assert len(default_page) == 100

    chosen = (await http.get("/v3/assets", params={"ids": "ethereum,bitcoin"})).json()["data"]
    assert [asset["id"] for asset in chosen] == ["bitcoin", "ethereum"]  # in rank order
    found = (await http.get("/v3/assets", params={"search": "DOGE"})).json()["data"]
    assert "dogecoin" in {asset["id"] for asset in found}

    too_many = await http.get("/v3/assets", params={"limit": 2001})
    assert too_many.status_code == 400
    assert "limit" in too_many.json()["error"]


async def test_healthz_says_the_data_is_simulated(http: httpx.AsyncClient) -> None:
    health = (await http.get("/healthz")).json()
    assert health["status"] == "ok"
    assert health["simulated"] is True


async def test_v2_answers_with_the_retirement_notice(http: httpx.AsyncClient) -> None:
    body = (await http.get("/v2/assets")).json()
    assert body["data"]["message"].startswith("We are deprecating this version of the CoinCap API")


async def test_an_api_key_is_required_when_configured() -> None:
    app = create_app(api_key="secret-key", seed=1, clock=FakeClock())
    async with http_for(app) as http:
        missing = await http.get("/v3/assets")
        wrong = await http.get("/v3/assets", headers={"Authorization": "Bearer nope"})
        header = await http.get("/v3/assets", headers={"Authorization": "Bearer secret-key"})
        query = await http.get("/v3/exchanges", params={"apiKey": "secret-key"})
        health = await http.get("/healthz")
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert "error" in missing.json()
    assert (header.status_code, query.status_code, health.status_code) == (200, 200, 200)


async def statuses_of(http: httpx.AsyncClient, path: str, requests: int) -> list[int]:
    return [(await http.get(path)).status_code for _ in range(requests)]


async def test_faults_are_a_queue_taken_in_order(http: httpx.AsyncClient) -> None:
    await http.post("/_simulator/faults", json={"mode": "rate_limit", "count": 2, "retry_after": 1})
    await http.post("/_simulator/faults", json={"mode": "server_error", "count": 1})
    listed = (await http.get("/_simulator/faults")).json()["faults"]
    assert [(fault["mode"], fault["count"]) for fault in listed] == [
        ("rate_limit", 2),
        ("server_error", 1),
    ]

    first = await http.get("/v3/assets")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "1"
    assert await statuses_of(http, "/v3/exchanges", 3) == [429, 500, 200]
    assert (await http.get("/_simulator/faults")).json()["faults"] == []

    stats = (await http.get("/_simulator/stats")).json()
    assert stats["requests"] == {"assets": 1, "exchanges": 3}
    assert stats["statuses"]["exchanges"] == {"429": 1, "500": 1, "200": 1}


async def test_quota_exhausted_lasts_until_cleared(http: httpx.AsyncClient) -> None:
    await http.post("/_simulator/faults", json={"mode": "quota_exhausted"})
    assert await statuses_of(http, "/v3/assets", 4) == [429] * 4
    assert "Retry-After" not in (await http.get("/v3/assets")).headers

    cleared = (await http.delete("/_simulator/faults")).json()
    assert cleared["cleared"] == 1
    assert await statuses_of(http, "/v3/assets", 1) == [200]


async def test_a_fault_can_target_one_endpoint(http: httpx.AsyncClient) -> None:
    await http.post("/_simulator/faults", json={"mode": "server_error", "endpoint": "exchanges"})
    assert await statuses_of(http, "/v3/assets", 1) == [200]
    assert await statuses_of(http, "/v3/exchanges", 2) == [500, 200]


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ({"mode": "server_error", "status": 503}, lambda r: r.status_code == 503),
        (
            {"mode": "malformed_json"},
            lambda r: r.status_code == 200 and not r.text.rstrip().endswith("}"),
        ),
        (
            {"mode": "retired_v2"},
            lambda r: r.status_code == 200 and isinstance(r.json()["data"], dict),
        ),
        (
            {"mode": "missing_id"},
            lambda r: "id" not in r.json()["data"][0] and "id" in r.json()["data"][1],
        ),
        ({"mode": "slow", "seconds": 0.01}, lambda r: r.status_code == 200),
    ],
)
async def test_each_fault_answers_as_documented(
    http: httpx.AsyncClient, fault: dict[str, Any], check: Callable[[httpx.Response], bool]
) -> None:
    assert (await http.post("/_simulator/faults", json=fault)).status_code == 200
    assert check(await http.get("/v3/assets"))
    assert (await http.get("/v3/assets")).status_code == 200  # count 1 by default


async def test_missing_id_on_exchanges_drops_exchange_id(http: httpx.AsyncClient) -> None:
    await http.post("/_simulator/faults", json={"mode": "missing_id"})
    exchanges = (await http.get("/v3/exchanges")).json()["data"]
    assert validation_error("exchanges", exchanges[0]) == "missing required field 'exchangeId'"
    assert all(validation_error("exchanges", exchange) is None for exchange in exchanges[1:])


async def test_a_bad_fault_knob_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/_simulator/faults", json={"mode": "earthquake"})
    assert response.status_code == 422


async def test_faults_set_at_start_apply() -> None:
    app = create_app(seed=1, clock=FakeClock(), faults=[simulator.Fault(mode="quota_exhausted")])
    async with http_for(app) as http:
        assert await statuses_of(http, "/v3/exchanges", 2) == [429, 429]


def test_the_cli_refuses_a_bad_fault(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        simulator.main(["--fault", '{"mode": "earthquake"}'])
    assert exit_info.value.code == 2
    assert "not a fault knob" in capsys.readouterr().err


async def test_an_oversized_body_is_that_many_bytes_of_valid_json(http: httpx.AsyncClient) -> None:
    fault = {"mode": "oversized_body", "size_bytes": 300_000}
    assert (await http.post("/_simulator/faults", json=fault)).status_code == 200
    response = await http.get("/v3/assets")
    assert response.status_code == 200 and len(response.content) == 300_000
    assert response.json()["data"] == []


async def test_the_fault_queue_is_bounded_with_a_clear_409(http: httpx.AsyncClient) -> None:
    for _ in range(MAX_QUEUED_FAULTS):
        added = await http.post("/_simulator/faults", json={"mode": "slow", "seconds": 0})
        assert added.status_code == 200
    refused = await http.post("/_simulator/faults", json={"mode": "server_error"})
    assert refused.status_code == 409
    assert "DELETE /_simulator/faults" in refused.json()["detail"]
    listed = (await http.get("/_simulator/faults")).json()["faults"]
    assert len(listed) == MAX_QUEUED_FAULTS
    assert (await http.delete("/_simulator/faults")).json()["cleared"] == len(listed)
