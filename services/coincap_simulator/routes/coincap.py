"""The CoinCap-compatible API, in CoinCap v3's wire format (decimal strings, ``rank`` as a
string, ``{"data": [...], "timestamp": <ms>}``).

    GET /v3/assets       limit (default 100, max 2000), offset, ids=bitcoin,ethereum, search
    GET /v3/exchanges    limit, offset
    GET /v3/assets/{id}/history   interval (m1 ... d1), start and end (epoch ms; without them,
                         the last day): at most 10,000 points, none later than the current tick
    GET /v2/...          always the v2 retirement notice, as CoinCap v2 answers today

With an API key set, /v3 requests need ``Authorization: Bearer KEY`` or ``?apiKey=KEY``;
others get 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from services.coincap_simulator.dependencies import SimulatorState, StateDep
from services.coincap_simulator.faults import (
    Fault,
    absurd_record_count,
    altered_records,
    hold_back,
    page_response,
    poison_record_count,
    replacement_response,
)
from services.coincap_simulator.history import history_points
from services.coincap_simulator.models import Endpoint, error_response, retirement_notice
from services.coincap_simulator.routes.served import record_served
from shared.coincap.history import HISTORY_INTERVALS, interval_milliseconds

router = APIRouter(tags=["CoinCap v3 (simulated)"])

MAX_LIMIT = 2000
MAX_HISTORY_POINTS = 10_000
_DAY_MS = 86_400_000

Records = list[dict[str, Any]]


@router.get("/v3/assets")
async def assets(
    state: StateDep,
    request: Request,
    limit: int = 100,
    offset: int = 0,
    ids: str | None = None,
    search: str | None = None,
) -> Response:
    def matching() -> Records:
        selected = state.market.assets
        if ids:
            wanted = {part.strip() for part in ids.split(",") if part.strip()}
            selected = [asset for asset in selected if asset["id"] in wanted]
        if search:
            needle = search.lower()
            selected = [
                asset
                for asset in selected
                if any(needle in asset[field].lower() for field in ("id", "symbol", "name"))
            ]
        return selected

    return await answer(state, "assets", request, limit, offset, matching)


@router.get("/v3/exchanges")
async def exchanges(
    state: StateDep, request: Request, limit: int = 100, offset: int = 0
) -> Response:
    return await answer(state, "exchanges", request, limit, offset, lambda: state.market.exchanges)


@router.get("/v3/assets/{asset_id}/history")
async def asset_history(
    state: StateDep,
    request: Request,
    asset_id: str,
    interval: str,
    start: int | None = None,
    end: int | None = None,
) -> Response:
    state.stats.count_request("history")
    response = await history_or_error(state, request, asset_id, interval, start, end)
    state.stats.count_status("history", response.status_code)
    return response


async def history_or_error(
    state: SimulatorState,
    request: Request,
    asset_id: str,
    interval: str,
    start: int | None,
    end: int | None,
) -> Response:
    """Checks first (key, interval, range), then the fault knob, then the points."""
    now_ms = round(state.clock() * 1000)
    if not has_api_key(request, state.api_key):
        message = "Unauthorized: a valid API key is required (simulated CoinCap)"
        return error_response(message, 401, now_ms)
    interval_ms = interval_milliseconds(interval)
    if interval_ms is None:
        message = f"interval must be one of {', '.join(HISTORY_INTERVALS)}, got {interval!r}"
        return error_response(message, 400, now_ms)
    end_ms = now_ms if end is None else end
    start_ms = end_ms - _DAY_MS if start is None else start
    if start_ms > end_ms:
        return error_response(f"start ({start_ms}) is after end ({end_ms})", 400, now_ms)
    if (end_ms - start_ms) // interval_ms + 1 > MAX_HISTORY_POINTS:
        message = f"a {interval} range may hold at most {MAX_HISTORY_POINTS} points"
        return error_response(message, 400, now_ms)
    fault, replacement = await take_fault(state, "history")
    if replacement is not None:
        return replacement
    market = state.market
    points = history_points(market, asset_id, interval_ms, start_ms, end_ms)
    if points is None:
        return error_response(f"{asset_id} not found", 404, market.timestamp_ms)
    records = altered_records(fault, "history", points)
    return page_response(fault, records, market.timestamp_ms)


@router.get("/v2/{path:path}")
async def retired_v2(state: StateDep, path: str) -> dict[str, Any]:
    return retirement_notice(round(state.clock() * 1000))


async def answer(
    state: SimulatorState,
    endpoint: Endpoint,
    request: Request,
    limit: int,
    offset: int,
    select: Callable[[], Records],
) -> Response:
    """A /v3 answer, counted in the stats. ``select`` picks records after the market moved."""
    state.stats.count_request(endpoint)
    response = await page_or_error(state, endpoint, request, limit, offset, select)
    state.stats.count_status(endpoint, response.status_code)
    return response


async def page_or_error(
    state: SimulatorState,
    endpoint: Endpoint,
    request: Request,
    limit: int,
    offset: int,
    select: Callable[[], Records],
) -> Response:
    """Checks first (key, limit, offset), then the fault knob this request takes, then data."""
    now_ms = round(state.clock() * 1000)
    if not has_api_key(request, state.api_key):
        message = "Unauthorized: a valid API key is required (simulated CoinCap)"
        return error_response(message, 401, now_ms)
    if not 1 <= limit <= MAX_LIMIT:
        message = f"limit must be between 1 and {MAX_LIMIT}, got {limit}"
        return error_response(message, 400, now_ms)
    if offset < 0:
        return error_response(f"offset must be 0 or more, got {offset}", 400, now_ms)
    fault, replacement = await take_fault(state, endpoint)
    if replacement is not None:
        return replacement
    market = state.market
    records = altered_records(fault, endpoint, select()[offset : offset + limit])
    delayed = fault is not None and fault.mode == "slow"
    response = page_response(fault, records, market.timestamp_ms)
    if fault is None or fault.mode != "poison_page":  # refused whole: none of its records owed
        absurd = absurd_record_count(fault, endpoint, len(records))
        poison = poison_record_count(fault, endpoint, len(records))
        record_served(request, endpoint, market.timestamp_ms, records, delayed, absurd, poison)
    return response


def has_api_key(request: Request, api_key: str | None) -> bool:
    """Whether the request offers ``api_key`` as CoinCap v3 takes it (header or query)."""
    if api_key is None:
        return True
    header = request.headers.get("authorization", "")
    offered = [
        header.removeprefix("Bearer ") if header.startswith("Bearer ") else "",
        request.query_params.get("apiKey", ""),
    ]
    return any(secrets.compare_digest(key.encode(), api_key.encode()) for key in offered if key)


async def take_fault(
    state: SimulatorState, endpoint: Endpoint
) -> tuple[Fault | None, Response | None]:
    """The fault knob this request takes, applied in order: its delay, then the market moved to
    now, then the answer that replaces the whole response when the knob is one of those."""
    fault = state.faults.take(endpoint)
    await hold_back(fault)
    state.market.advance_to(state.clock())
    return fault, replacement_response(fault, state.market.timestamp_ms)
