"""The simulator's served log, which the fault suite's checker reads: what each 200 page held."""

from __future__ import annotations

import httpx

from services.coincap_simulator.app import create_app


async def test_the_served_log_lists_each_page_with_its_ids_and_timestamp() -> None:
    app = create_app(seed=7, clock=lambda: 1_000.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        await client.post("/_simulator/faults", json={"mode": "server_error", "count": 1})
        assert (await client.get("/v3/assets?limit=3")).status_code == 500
        await client.post("/_simulator/faults", json={"mode": "missing_id", "count": 1})
        page = (await client.get("/v3/assets?limit=3")).json()
        await client.post("/_simulator/faults", json={"mode": "slow", "seconds": 0})
        await client.get("/v3/exchanges?limit=2")
        await client.get("/v3/assets/bitcoin/history?interval=h1")
        served = (await client.get("/_simulator/served")).json()
        later = (await client.get("/_simulator/served?after=1")).json()

    assert served["forgotten"] == 0
    first, second = served["pages"]  # the 500 and the history answer are not records served
    assert first == {
        "sequence": 1,
        "endpoint": "assets",
        "timestamp": page["timestamp"],
        "ids": [None, *(record["id"] for record in page["data"][1:])],
        "delayed": False,
        "absurd": [],
        "poison": [],
    }
    assert second["endpoint"] == "exchanges" and second["delayed"] is True
    assert len(second["ids"]) == 2 and None not in second["ids"]
    assert later["pages"] == [second]
