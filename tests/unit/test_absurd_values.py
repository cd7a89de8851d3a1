"""Absurd values: the simulator's ``absurd_values`` knob serves them in CoinCap's wire format,
and the ingestors' validation refuses each one with a reason naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.coincap_simulator.app import create_app
from services.coincap_simulator.faults import ABSURD_VALUES
from shared.coincap.models import RecordKind, validation_error


async def served_with_absurd_values(endpoint: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One page of ``endpoint`` taken by an ``absurd_values`` knob, and the served log."""
    app = create_app(seed=7, clock=lambda: 1_000.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        knob = {"mode": "absurd_values", "endpoint": endpoint}
        assert (await client.post("/_simulator/faults", json=knob)).status_code == 200
        page = (await client.get(f"/v3/{endpoint}?limit=20")).json()
        served = (await client.get("/_simulator/served")).json()
    return page, served


@pytest.mark.parametrize(("endpoint", "key"), [("assets", "id"), ("exchanges", "exchangeId")])
async def test_each_absurd_value_is_served_as_text_and_refused_with_its_field(
    endpoint: RecordKind, key: str
) -> None:
    page, served = await served_with_absurd_values(endpoint)
    absurd = ABSURD_VALUES[endpoint]
    records = page["data"]
    for record, (field, value) in zip(records, absurd, strict=False):
        assert record[field] == value  # a decimal string, as CoinCap sends numbers
        reason = validation_error(endpoint, record)
        assert reason is not None and reason.startswith(f"{field}: "), (field, value, reason)
    # Only those records: the rest of the page is as the market made it.
    assert all(validation_error(endpoint, r) is None for r in records[len(absurd) :])
    [logged] = served["pages"]
    assert logged["absurd"] == [record[key] for record in records[: len(absurd)]]
    assert logged["ids"] == [record[key] for record in records]


async def test_absurd_values_in_history_is_refused_at_once() -> None:
    app = create_app(seed=7, clock=lambda: 1_000.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        knob = {"mode": "absurd_values", "endpoint": "history"}
        response = await client.post("/_simulator/faults", json=knob)
    assert response.status_code == 422
    assert "listings only" in response.text


@pytest.mark.parametrize(
    ("kind", "record", "reason"),
    [
        ("assets", {"id": "x", "supply": "-1.5"}, "supply: '-1.5' is below the minimum 0"),
        ("assets", {"id": "x", "rank": "0"}, "rank: '0' is below the minimum 1"),
        ("assets", {"id": "x", "rank": 0}, "rank: 0 is below the minimum 1"),
        (
            "assets",
            {"id": "x", "priceUsd": "-0.000001"},
            "priceUsd: '-0.000001' is below the minimum 0",
        ),
        (
            "exchanges",
            {"exchangeId": "x", "tradingPairs": "-52"},
            "tradingPairs: '-52' is below the minimum 0",
        ),
        (
            "exchanges",
            {"exchangeId": "x", "percentTotalVolume": "-2.9"},
            "percentTotalVolume: '-2.9' is below the minimum 0",
        ),
    ],
)
def test_a_value_below_its_minimum_is_refused_with_the_reason(
    kind: RecordKind, record: dict[str, Any], reason: str
) -> None:
    assert validation_error(kind, record) == reason


@pytest.mark.parametrize(
    "record",
    [
        {"id": "x", "rank": "1", "supply": "0", "priceUsd": "0", "changePercent24Hr": "-99.5"},
        {"id": "x", "priceUsd": "-0"},
        {"id": "x", "maxSupply": None, "vwap24Hr": None},
    ],
)
def test_edge_values_that_mean_something_are_kept(record: dict[str, Any]) -> None:
    assert validation_error("assets", record) is None
