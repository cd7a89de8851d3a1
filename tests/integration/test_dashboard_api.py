"""The dashboard's JSON API on the BigQuery emulator: bounded answers, clear errors, OpenAPI.

The app runs in this process (FastAPI's TestClient) with the real client and the real views,
on a dataset of its own seeded with rows shaped as the stream worker writes them
(``tests.harness.warehouse_seed``); the browser tests drive the same app as a process.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from services.dashboard.app import create_app
from shared.schemas import ASSETS, EXCHANGES
from shared.settings import Settings
from tests.harness.asset_history import history_row, load_history
from tests.harness.environment import TEST_ENVIRONMENT, offset_port
from tests.harness.processes import LocalStack, settings_from
from tests.harness.warehouse_seed import load_rows, prepared_warehouse, worker_row

NOW = datetime.now(UTC).replace(microsecond=0)
SNAPSHOTS = 30  # ten seconds apart, the newest a minute ago
STEP = timedelta(seconds=10)
NEWEST = NOW - timedelta(minutes=1)


def snapshot_time(index: int) -> datetime:
    return NEWEST - (SNAPSHOTS - 1 - index) * STEP


def asset_rows() -> list[dict[str, Any]]:
    rows = []
    for index in range(SNAPSHOTS):
        at = snapshot_time(index)
        for asset_id, symbol, rank, max_supply in (
            ("bitcoin", "BTC", 1, 21_000_000.0),
            ("ethereum", "ETH", 2, None),
            ("dogecoin", "DOGE", 3, None),
        ):
            record = {
                "id": asset_id,
                "symbol": symbol,
                "name": asset_id.title(),
                "rank": str(rank),
                "priceUsd": str(100.0 * (4 - rank) + index),
                "marketCapUsd": str(1e9 * (4 - rank)),
                "supply": "19000000.0",
                "maxSupply": None if max_supply is None else str(max_supply),
                "changePercent24Hr": "1.5",
            }
            rows.append(
                worker_row(
                    ASSETS,
                    record,
                    source_timestamp=at,
                    processed_at=at + timedelta(seconds=2),
                )
            )
    # A snapshot two days old: only a range that reaches back that far sees it.
    old = NOW - timedelta(days=2)
    oldcoin = {"id": "oldcoin", "symbol": "OLD", "name": "Old coin", "rank": "4", "priceUsd": "1"}
    rows.append(worker_row(ASSETS, oldcoin, source_timestamp=old, processed_at=old))
    return rows


def exchange_rows() -> list[dict[str, Any]]:
    return [
        worker_row(
            EXCHANGES,
            {
                "exchangeId": exchange_id,
                "name": exchange_id.title(),
                "rank": str(rank),
                "percentTotalVolume": str(share),
                "volumeUsd": str(share * 1e8),
                "tradingPairs": "100",
            },
            source_timestamp=snapshot_time(index),
            processed_at=snapshot_time(index) + timedelta(seconds=2),
        )
        for index in range(SNAPSHOTS)
        for exchange_id, rank, share in (("binance", 1, 60.0), ("kraken", 2, 40.0))
    ]


HISTORY_HOURS = 72  # bitcoin's backfilled history: hourly, three days up to an hour ago
HISTORY_AFTER_LIVE_PRICE = 999_999.0


def history_rows() -> list[dict[str, Any]]:
    """Hourly bitcoin history, and one point after its snapshots begin (never to be drawn)."""
    start = NOW - timedelta(hours=HISTORY_HOURS)
    rows = [
        history_row(
            "bitcoin", "h1", start + timedelta(hours=hour), 200.0 + hour, 18_000_000.0 + hour
        )
        for hour in range(HISTORY_HOURS)
    ]
    rows.append(history_row("bitcoin", "h1", NEWEST, HISTORY_AFTER_LIVE_PRICE, 1.0))
    return rows


def dashboard_settings(**overrides: str) -> Settings:
    return settings_from(
        {
            **TEST_ENVIRONMENT,
            "COINSTREAM_BIGQUERY_DATASET": f"dashboard_api_{uuid.uuid4().hex[:8]}",
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def api(local_stack: LocalStack) -> Iterator[TestClient]:
    settings = dashboard_settings(COINSTREAM_STREAM_TRIGGER_SECONDS="3")
    client = prepared_warehouse(settings)
    load_rows(client, settings, ASSETS, asset_rows())
    load_rows(client, settings, EXCHANGES, exchange_rows())
    load_history(client, settings, history_rows())
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def get(api: TestClient, path: str, **parameters: Any) -> Any:
    response = api.get(path, params=parameters)
    assert response.status_code == 200, response.text
    return response.json()


def queries_timed(metrics_text: str, query: str, outcome: str) -> float:
    """How many ``query`` calls ended in ``outcome``, as the dashboard's /metrics counts them."""
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "coinstream_dashboard_query_duration_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count") and sample.labels == {
                    "query": query,
                    "outcome": outcome,
                }:
                    return sample.value
    return 0.0


def test_status_says_simulated_fresh_and_how_often_to_look(api: TestClient) -> None:
    status = get(api, "/api/status")
    assert status["simulated"] is True
    assert "simulator" in status["data_source"]
    assert status["has_data"] is True and status["message"] is None
    assert status["refresh_seconds"] == 3.0
    assert status["warehouse"].startswith("BigQuery emulator at http://127.0.0.1:")
    assets = status["assets"]
    assert assets["view"] == f"{status['dataset']}.assets_timeseries"
    assert assets["exists"] is True
    assert datetime.fromisoformat(assets["newest_snapshot"]) == NEWEST
    assert datetime.fromisoformat(assets["newest_processed"]) == NEWEST + timedelta(seconds=2)


def test_latest_is_each_assets_newest_snapshot_by_rank(api: TestClient) -> None:
    since = (NOW - timedelta(hours=1)).isoformat()
    latest = get(api, "/api/assets/latest", since=since)["assets"]
    assert [row["id"] for row in latest] == ["bitcoin", "ethereum", "dogecoin"]
    bitcoin = latest[0]
    assert datetime.fromisoformat(bitcoin["snapshot_at"]) == NEWEST
    assert bitcoin["price_usd"] == 300.0 + SNAPSHOTS - 1
    assert bitcoin["supply_percent_of_max"] == pytest.approx(19 / 21 * 100)
    assert latest[1]["supply_percent_of_max"] is None

    assert len(get(api, "/api/assets/latest", since=since, limit=2)["assets"]) == 2
    # Three days back reaches the old snapshot; an hour does not.
    three_days = get(api, "/api/assets/latest", since=(NOW - timedelta(days=3)).isoformat())
    assert [row["id"] for row in three_days["assets"]][-1] == "oldcoin"

    exchanges = get(api, "/api/exchanges/latest", since=since)["exchanges"]
    assert [row["exchange_id"] for row in exchanges] == ["binance", "kraken"]
    assert sum(row["percent_total_volume"] for row in exchanges) == pytest.approx(100)


def test_a_series_has_at_most_the_points_asked_for_ending_at_the_newest(api: TestClient) -> None:
    since = NEWEST - (SNAPSHOTS - 1) * STEP
    answer = get(
        api,
        "/api/assets/series",
        ids="dogecoin,bitcoin,nosuchcoin",
        since=since.isoformat(),
        until=NOW.isoformat(),
        points=5,
    )
    assert answer["bucket_seconds"] == math.ceil((NOW - since).total_seconds() / 5)
    assert [series["id"] for series in answer["series"]] == ["dogecoin", "bitcoin"]
    bitcoin = answer["series"][1]
    assert 2 <= len(bitcoin["t"]) <= 6
    assert bitcoin["t"] == sorted(bitcoin["t"])
    assert bitcoin["t"][-1] == int(NEWEST.timestamp() * 1000)
    assert bitcoin["price_usd"][-1] == 300.0 + SNAPSHOTS - 1
    assert bitcoin["rank"] == [1] * len(bitcoin["t"])
    assert all(value == pytest.approx(19 / 21 * 100) for value in bitcoin["supply_percent_of_max"])

    full = get(api, "/api/assets/series", ids="bitcoin", since=since.isoformat(), points=1000)
    assert len(full["series"][0]["t"]) == SNAPSHOTS

    exchanges = get(api, "/api/exchanges/series", ids="kraken", since=since.isoformat())
    kraken = exchanges["series"][0]
    assert kraken["exchange_id"] == "kraken" and len(kraken["t"]) == SNAPSHOTS
    assert set(kraken["percent_total_volume"]) == {40.0}


def test_history_fills_the_range_before_the_first_snapshot(api: TestClient) -> None:
    since = NOW - timedelta(days=2)
    answer = get(api, "/api/assets/bitcoin/history", since=since.isoformat(), points=1000)
    live_since = datetime.fromisoformat(answer["live_since"])
    assert live_since == snapshot_time(0)  # the first snapshot in the range
    times = answer["t"]
    assert times == sorted(times) and times
    assert times[0] >= since.timestamp() * 1000
    assert times[-1] < live_since.timestamp() * 1000  # history stops where live data begins
    assert HISTORY_AFTER_LIVE_PRICE not in answer["price_usd"]
    assert len(times) == 48  # the hours of two days back, each a point of its own
    assert set(answer["interval"]) == {"h1"}
    assert answer["price_usd"][-1] == 200.0 + HISTORY_HOURS - 1
    assert answer["circulating_supply"][-1] == 18_000_000.0 + HISTORY_HOURS - 1

    few = get(
        api,
        "/api/assets/bitcoin/history",
        since=since.isoformat(),
        until=NOW.isoformat(),
        points=6,
    )
    assert 2 <= len(few["t"]) <= 8 and few["bucket_seconds"] == math.ceil(2 * 86400 / 6)


def test_history_of_a_range_without_snapshots_fills_all_of_it(api: TestClient) -> None:
    until = NOW - timedelta(days=1)
    answer = get(
        api,
        "/api/assets/bitcoin/history",
        since=(NOW - timedelta(days=3)).isoformat(),
        until=until.isoformat(),
        points=1000,
    )
    assert answer["live_since"] is None
    assert len(answer["t"]) == 49  # hourly, both ends included
    assert answer["t"][-1] == int(until.timestamp() * 1000)


def test_an_asset_without_history_answers_an_empty_one(api: TestClient) -> None:
    answer = get(api, "/api/assets/ethereum/history", since=(NOW - timedelta(days=1)).isoformat())
    assert answer["t"] == [] and answer["price_usd"] == [] and answer["circulating_supply"] == []
    assert datetime.fromisoformat(answer["live_since"]) == snapshot_time(0)
    assert api.get("/api/assets/bitcoin') OR TRUE --/history").status_code in (404, 422)
    assert api.get("/api/assets/bit%20coin/history").status_code == 422
    assert get(api, "/api/status")["backfill_command"].startswith("coinstream backfill ")


@pytest.mark.parametrize(
    ("path", "parameters", "complaint"),
    [
        ("/api/assets/series", {"ids": "bitcoin') OR TRUE --"}, "is not an id"),
        ("/api/assets/series", {"ids": ",".join(f"c{n}" for n in range(21))}, "at most 20"),
        ("/api/assets/series", {"ids": " , "}, "at least one id"),
        ("/api/assets/series", {"ids": "bitcoin", "points": 5000}, "points"),
        (
            "/api/assets/latest",
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "must be before until",
        ),
        ("/api/exchanges/latest", {"since": "2020-01-01T00:00:00Z"}, "at most 366 days"),
        ("/api/exchanges/latest", {"since": "yesterday"}, "since"),
    ],
)
def test_bad_parameters_are_refused_saying_which(
    api: TestClient, path: str, parameters: dict[str, Any], complaint: str
) -> None:
    response = api.get(path, params=parameters)
    assert response.status_code == 422
    assert complaint in response.json()["detail"]


def test_an_empty_warehouse_is_not_an_error_and_says_what_to_start(
    local_stack: LocalStack,
) -> None:
    settings = dashboard_settings()
    with TestClient(create_app(settings)) as empty:
        status = get(empty, "/api/status")
        assert status["has_data"] is False
        assert status["assets"]["exists"] is False
        assert "do not exist" in status["message"]
        assert "is the stream worker running? (`make run` starts it)" in status["message"]
        assert get(empty, "/api/assets/latest")["assets"] == []
        assert get(empty, "/api/exchanges/series", ids="binance")["series"] == []
        assert get(empty, "/api/assets/bitcoin/history")["t"] == []


def test_an_unreachable_warehouse_is_a_503_naming_it() -> None:
    dead = f"http://127.0.0.1:{offset_port(18258)}"
    settings = dashboard_settings(
        COINSTREAM_BIGQUERY_EMULATOR_URL=dead, COINSTREAM_BIGQUERY_TIMEOUT_SECONDS="1"
    )
    with TestClient(create_app(settings)) as unreachable:
        for path, parameters in (
            ("/api/status", {}),
            ("/api/assets/latest", {}),
            ("/api/assets/series", {"ids": "bitcoin"}),
            ("/api/exchanges/latest", {}),
        ):
            response = unreachable.get(path, params=parameters)
            assert response.status_code == 503, path
            detail = response.json()["detail"]
            assert f"the warehouse (BigQuery emulator at {dead}) did not answer" in detail
            assert "make run" in detail and "COINSTREAM_BIGQUERY_EMULATOR_URL" in detail
        assert unreachable.get("/healthz").json() == {"status": "ok"}
        assert queries_timed(unreachable.get("/metrics").text, "assets_latest", "unavailable") >= 1


def test_openapi_documents_every_route_and_its_errors(api: TestClient) -> None:
    document = get(api, "/openapi.json")
    paths = document["paths"]
    for path in (
        "/api/status",
        "/api/assets/latest",
        "/api/assets/series",
        "/api/exchanges/latest",
        "/api/exchanges/series",
        "/api/assets/{key}/history",
    ):
        responses = paths[path]["get"]["responses"]
        assert responses["503"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }, path
        assert "warehouse" in responses["503"]["description"]
    assert "422" in paths["/api/assets/series"]["get"]["responses"]


def test_metrics_time_each_query_by_outcome(api: TestClient) -> None:
    get(api, "/api/assets/latest")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert queries_timed(response.text, "assets_latest", "ok") >= 1


def test_the_page_loads_nothing_from_other_hosts(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith(("/", "#", "data:")) for source in sources), sources
    for source in ("/vendor/chart.umd.min.js", "/static/dashboard.js", "/static/dashboard.css"):
        assert api.get(source).status_code == 200, source
    assert "http" not in api.get("/static/dashboard.js").text.replace("http://127.0.0.1", "")
