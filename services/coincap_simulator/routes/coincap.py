"""The CoinCap-compatible API, in CoinCap v3's wire format (decimal strings, ``rank`` as a
string, ``{"data": [...], "timestamp": <ms>}``).

    GET /v3/assets       limit (default 100, max 2000), offset, ids=bitcoin,ethereum, search
    GET /v3/exchanges    limit, offset
    GET /v2/...          always the v2 retirement notice, as CoinCap v2 answers today

With an API key set, /v3 requests need ``Authorization: Bearer KEY`` or ``?apiKey=KEY``;
others get 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from services.coincap_simulator.dependencies import SimulatorState, StateDep
from services.coincap_simulator.faults import altered_records, hold_back, replacement_response
from services.coincap_simulator.models import Endpoint, error_response, retirement_notice

router = APIRouter(tags=["CoinCap v3 (simulated)"])

MAX_LIMIT = 2000

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
    fault = state.faults.take(endpoint)
    await hold_back(fault)
    market = state.market
    market.advance_to(state.clock())
    replacement = replacement_response(fault, market.timestamp_ms)
    if replacement is not None:
        return replacement
    records = altered_records(fault, endpoint, select()[offset : offset + limit])
    return JSONResponse({"data": records, "timestamp": market.timestamp_ms})


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
