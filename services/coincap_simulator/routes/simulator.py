"""The simulator's own routes, which never need an API key:

GET /healthz                          {"status": "ok", "simulated": true, ...}
GET /_simulator/stats                 requests and response statuses per endpoint
GET|POST|DELETE /_simulator/faults    show, add, clear fault knobs (see ``faults``)
"""

from __future__ import annotations

import logging

from fastapi import APIRouter

from services.coincap_simulator.dependencies import StateDep
from services.coincap_simulator.faults import ClearedFaults, Fault, FaultList
from services.coincap_simulator.models import RequestStats, SimulatorHealth

logger = logging.getLogger(__name__)

router = APIRouter(tags=["simulator"])


@router.get("/healthz")
async def healthz(state: StateDep) -> SimulatorHealth:
    market = state.market
    market.advance_to(state.clock())
    return SimulatorHealth(
        assets=len(market.assets),
        exchanges=len(market.exchanges),
        tick_seconds=market.tick_seconds,
        seed=state.seed,
        timestamp=market.timestamp_ms,
        api_key_required=state.api_key is not None,
    )


@router.get("/_simulator/stats")
async def stats(state: StateDep) -> RequestStats:
    return state.stats


@router.get("/_simulator/faults")
async def list_faults(state: StateDep) -> FaultList:
    return state.faults.listed()


@router.post("/_simulator/faults")
async def add_fault(state: StateDep, fault: Fault) -> FaultList:
    state.faults.add(fault)
    logger.info("fault knob added: %s", fault.model_dump_json(exclude_defaults=True))
    return state.faults.listed()


@router.delete("/_simulator/faults")
async def clear_faults(state: StateDep) -> ClearedFaults:
    cleared = state.faults.clear()
    logger.info("fault knobs cleared (%d)", cleared)
    return ClearedFaults(cleared=cleared)
