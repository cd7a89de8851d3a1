"""Poison: the simulator's ``poison`` knob serves, beside healthy records, values that once
stopped an ingestor, in CoinCap's wire format; the served log names them. ``poison_page`` spoils
a whole page, and is not in the served log (none of its records is owed)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.coincap_simulator.app import create_app
from services.coincap_simulator.faults import PAGE_POISON_NESTING_DEPTH, POISON_VALUES
from shared.coincap.history import point_time_error
from shared.coincap.models import RecordKind, validation_error


async def served_with(knob: dict[str, Any], path: str) -> tuple[httpx.Response, dict[str, Any]]:
    """One answer to ``path`` taken by ``knob``, and the served log."""
    app = create_app(seed=7, clock=lambda: 1_000.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        assert (await client.post("/_simulator/faults", json=knob)).status_code == 200
        answer = await client.get(path)
        served = (await client.get("/_simulator/served")).json()
    return answer, served


@pytest.mark.parametrize(("endpoint", "key"), [("assets", "id"), ("exchanges", "exchangeId")])
async def test_each_poison_value_is_served_beside_healthy_records_and_logged(
    endpoint: RecordKind, key: str
) -> None:
    answer, served = await served_with({"mode": "poison", "endpoint": endpoint}, f"/v3/{endpoint}")
    # A lone surrogate travels as JSON's escape: UTF-8 cannot carry it raw.
    assert b'"\\ud800"' in answer.content
    assert len(answer.content) < 8 * 1024 * 1024  # under the ingestors' response cap
    records = answer.json()["data"]
    poison = POISON_VALUES[endpoint]
    for record, (field, value) in zip(records, poison, strict=False):
        assert record[field] == value
    assert all(validation_error(endpoint, r) is None for r in records[len(poison) :])
    [logged] = served["pages"]
    assert logged["poison"] == [record[key] for record in records[: len(poison)]]
    assert logged["absurd"] == []


async def test_the_exchange_updated_of_the_issue_is_among_the_poison() -> None:
    answer, _ = await served_with({"mode": "poison", "endpoint": "exchanges"}, "/v3/exchanges")
    assert b'"updated":9999999999999999' in answer.content


async def test_poison_in_history_gives_points_the_backfill_refuses() -> None:
    knob = {"mode": "poison", "endpoint": "history"}
    answer, served = await served_with(knob, "/v3/assets/bitcoin/history?interval=h1")
    points = answer.json()["data"]
    assert points[0]["time"] == 9_999_999_999_999_999
    assert "outside BigQuery's TIMESTAMP range" in str(point_time_error(points[0]))
    assert points[1]["date"] == "\ud800"
    assert served["pages"] == []  # history is not a listing the served log keeps


async def test_a_poison_page_timestamp_is_1e16_and_not_logged() -> None:
    answer, served = await served_with({"mode": "poison_page"}, "/v3/assets?limit=5")
    body = answer.json()
    assert answer.status_code == 200 and body["timestamp"] == 1e16
    assert len(body["data"]) == 5
    assert served["pages"] == []


async def test_a_poison_page_can_nest_past_any_recursive_parser() -> None:
    knob = {"mode": "poison_page", "poison": "nesting"}
    answer, served = await served_with(knob, "/v3/exchanges?limit=5")
    assert answer.status_code == 200
    assert b"[" * PAGE_POISON_NESTING_DEPTH + b"]" * PAGE_POISON_NESTING_DEPTH in answer.content
    assert len(answer.content) < 8 * 1024 * 1024
    with pytest.raises(RecursionError):
        answer.json()
    assert served["pages"] == []
