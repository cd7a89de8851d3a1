"""The simulator's ``/assets/{id}/history``: CoinCap's wire format, the same points every time,
a last point at the current price, and the fault knobs; read through the real client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from services.coincap_simulator import create_app
from services.coincap_simulator.faults import Fault
from shared.coincap import CoinCapClient, QuotaExhausted
from shared.coincap.history import INTERVAL_MS

START = 1_800_000_000.0
HOUR_MS = INTERVAL_MS["h1"]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


async def no_wait(seconds: float) -> None:
    """Retries without the wait, so a 429 storm ends at once."""


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def http(clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(seed=11, tick_seconds=1.0, clock=clock)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as client:
        yield client


def coincap(http: httpx.AsyncClient, clock: Clock) -> CoinCapClient:
    """A client whose "now" is the simulator's, or its answers would be years away from now."""
    return CoinCapClient(
        "http://simulator/v3", http_client=http, max_retries=2, sleep=no_wait, clock=clock
    )


async def test_history_is_coincap_shaped_and_the_same_when_asked_again(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    end = int(START * 1000)
    start = end - 30 * 24 * HOUR_MS
    first = await coincap(http, clock).fetch_history("bitcoin", "h1", start, end)
    assert len(first.records) == 30 * 24 + 1
    point = first.records[0]
    assert set(point) == {"priceUsd", "time", "circulatingSupply", "date"}
    assert isinstance(point["time"], int) and point["time"] % HOUR_MS == 0
    assert Decimal(point["priceUsd"]) > 0 and Decimal(point["circulatingSupply"]) > 0
    assert point["date"].endswith("Z")
    clock.now += 7200  # the market moves on; the past it already told stays as it was
    again = await coincap(http, clock).fetch_history("bitcoin", "h1", start, end)
    assert again.records == first.records
    resumed = await coincap(http, clock).fetch_history("bitcoin", "h1", start + 24 * HOUR_MS, end)
    assert resumed.records == first.records[24:]


async def test_the_last_point_is_the_current_price(http: httpx.AsyncClient, clock: Clock) -> None:
    clock.now += 3 * 3600  # three hours of live market since the simulator started
    now_ms = int(clock.now * 1000)
    client = coincap(http, clock)
    points = (await client.fetch_history("ethereum", "m1", now_ms - HOUR_MS, now_ms)).records
    assets = (await http.get("/v3/assets", params={"ids": "ethereum"})).json()["data"]
    current = Decimal(assets[0]["priceUsd"])
    assert points[-1]["time"] == now_ms // 60_000 * 60_000
    assert Decimal(points[-1]["priceUsd"]) == current
    # And the made-up past joins the live one without a jump: a day before, a plausible price.
    day = await coincap(http, clock).fetch_history("ethereum", "h1", now_ms - 24 * HOUR_MS, now_ms)
    assert all(0.5 < Decimal(p["priceUsd"]) / current < 2 for p in day.records)


async def test_no_point_is_later_than_the_current_tick(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    now_ms = int(START * 1000)
    client = coincap(http, clock)
    future = await client.fetch_history("bitcoin", "h1", now_ms, now_ms + 48 * HOUR_MS)
    assert [point["time"] for point in future.records] == [now_ms // HOUR_MS * HOUR_MS][
        : len(future.records)
    ]


async def test_a_quota_fault_on_history_stops_the_client(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    await http.post("/_simulator/faults", json=Fault(mode="quota_exhausted").model_dump())
    with pytest.raises(QuotaExhausted, match="429"):
        await coincap(http, clock).fetch_history("bitcoin", "h1", 0, HOUR_MS)
    stats = (await http.get("/_simulator/stats")).json()
    assert stats["statuses"]["history"] == {"429": 3}  # the first try and two retries


async def test_history_faults_leave_listings_alone(http: httpx.AsyncClient) -> None:
    fault = Fault(mode="server_error", count=1, endpoint="history")
    await http.post("/_simulator/faults", json=fault.model_dump())
    assert (await http.get("/v3/assets")).status_code == 200
    answer = await http.get("/v3/assets/bitcoin/history", params={"interval": "h1"})
    assert answer.status_code == 500


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v3/assets/nonexistent/history", {"interval": "h1"}, 404),
        ("/v3/assets/bitcoin/history", {"interval": "h3"}, 400),
        ("/v3/assets/bitcoin/history", {"interval": "h1", "start": 10, "end": 5}, 400),
        ("/v3/assets/bitcoin/history", {"interval": "m1", "start": 0, "end": 10**12}, 400),
    ],
)
async def test_a_wrong_history_request_is_an_error(
    http: httpx.AsyncClient, path: str, params: dict[str, str | int], status: int
) -> None:
    answer = await http.get(path, params=params)
    assert answer.status_code == status
    assert "error" in answer.json()
