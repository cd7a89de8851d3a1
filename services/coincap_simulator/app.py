"""CoinCap simulator: a local stand-in for CoinCap v3 with a random market and fault knobs.

It lets the pipeline run and be tested without an API key or network, in CoinCap's real wire
format (decimal strings, ``rank`` as a string, ``{"data": [...], "timestamp": <ms>}``), and it can
misbehave on demand the ways CoinCap does, so retries and dead letters can be watched working.
All data is simulated: real asset and exchange names, made-up numbers.

Run it::

    python -m services.coincap_simulator [--port 8090] [--api-key KEY] [--tick-seconds 1.0]
        [--seed N] [--fault '{"mode": "rate_limit", "count": 2, "retry_after": 1}'] ...

Endpoints:
    GET /v3/assets       limit (default 100, max 2000), offset, ids=bitcoin,ethereum, search
    GET /v3/exchanges    limit, offset
    GET /v2/...          always the v2 retirement notice, as CoinCap v2 answers today
    GET /healthz         {"status": "ok", "simulated": true, ...}
    GET /_simulator/stats            requests and response statuses per endpoint
    GET|POST|DELETE /_simulator/faults   show, add, clear fault knobs

The market moves once per ``tick_seconds``, worked out when a request arrives: prices follow a
seeded random walk (stablecoins stay near 1), market cap is price x supply, assets are ranked by
market cap, exchange volumes wander with ``percentTotalVolume`` summing to 100, and ``timestamp``
is the tick's time. A tick that comes after a long idle spell moves the market once, by as much as
the missed ticks would have together.

With ``--api-key``, /v3 requests need ``Authorization: Bearer KEY`` or ``?apiKey=KEY``; others get
401. The /_simulator and /healthz routes never need a key.

Fault knobs (``--fault JSON``, repeatable, or ``POST /_simulator/faults`` with one JSON object):
    {"mode": "rate_limit", "count": 2, "retry_after": 1}   429, with Retry-After when given
    {"mode": "quota_exhausted"}                            429 on every request until cleared
    {"mode": "server_error", "count": 3, "status": 500}    HTTP 5xx (status 500..599)
    {"mode": "slow", "seconds": 2, "count": 1}             answer normally after a delay
    {"mode": "malformed_json", "count": 1}                 200 with a truncated JSON body
    {"mode": "missing_id", "count": 1}                     the first record lacks id/exchangeId
    {"mode": "retired_v2", "count": 1}                     200 with the v2 retirement payload
Every knob also takes ``"endpoint": "assets" | "exchanges"`` to affect one endpoint only.
``count`` is how many requests it affects (default 1; quota_exhausted defaults to until cleared;
``null`` means until cleared). Knobs form a queue: each /v3 request (after the API-key check)
takes the first knob that matches its endpoint, so ``rate_limit`` x2 then ``server_error`` x1
answers 429, 429, 500, then normally. ``DELETE /_simulator/faults`` clears them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from pathlib import Path
from typing import Any, Literal, Self

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

logger = logging.getLogger(__name__)

UNIVERSE_PATH = Path(__file__).with_name("universe.json")

MAX_LIMIT = 2000

V2_RETIREMENT_NOTICE = (
    "We are deprecating this version of the CoinCap API on March 31, 2025. "
    "Use CoinCap v3 at https://rest.coincap.io/v3 (simulated notice: only the first sentence "
    "is CoinCap's own wording)."
)

# Enough precision for 36 decimal places on numbers up to 1e20 without rounding surprises.
_DECIMAL_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)

_PRICE_VOLATILITY_PER_TICK = 0.0005
_VOLUME_VOLATILITY_PER_TICK = 0.002
_STABLECOIN_NOISE_PER_TICK = 0.0002
_VWAP_WEIGHT_PER_TICK = 0.05
_PEG_PULL_PER_TICK = 0.05

Endpoint = Literal["assets", "exchanges"]
FaultMode = Literal[
    "rate_limit",
    "quota_exhausted",
    "server_error",
    "slow",
    "malformed_json",
    "missing_id",
    "retired_v2",
]


class Fault(BaseModel):
    """One fault knob; ``count`` is how many more requests it affects (None: until cleared)."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode
    count: int | None = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    seconds: float = Field(default=1.0, ge=0, le=600)
    status: int = Field(default=500, ge=500, le=599)
    endpoint: Endpoint | None = None

    @model_validator(mode="after")
    def _quota_lasts_until_cleared(self) -> Self:
        if self.mode == "quota_exhausted" and "count" not in self.model_fields_set:
            self.count = None
        return self


class FaultQueue:
    """The active fault knobs, taken in order by the requests they match."""

    def __init__(self, faults: Sequence[Fault] = ()) -> None:
        self._faults = [fault.model_copy() for fault in faults]

    def add(self, fault: Fault) -> None:
        self._faults.append(fault.model_copy())

    def clear(self) -> int:
        cleared = len(self._faults)
        self._faults.clear()
        return cleared

    def take(self, endpoint: Endpoint) -> Fault | None:
        """The fault this request suffers, if any, counting it against the knob."""
        for fault in self._faults:
            if fault.endpoint in (None, endpoint):
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [fault.model_dump() for fault in self._faults]


def decimal_text(value: Decimal, places: int) -> str:
    """``value`` with exactly ``places`` decimals and never in exponent notation, as CoinCap."""
    with localcontext(_DECIMAL_CONTEXT):
        return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def price_places(price: Decimal) -> int:
    """Decimals that keep at least 20 significant digits, and never fewer than CoinCap's 16."""
    return max(16, 19 - price.adjusted())


@dataclass
class _Asset:
    id: str
    symbol: str
    name: str
    supply: Decimal
    max_supply: Decimal | None
    price: Decimal
    price_24h_ago: Decimal
    vwap: Decimal | None
    volume_24h: Decimal
    explorer: str | None
    stablecoin: bool

    @property
    def market_cap(self) -> Decimal:
        with localcontext(_DECIMAL_CONTEXT):
            return self.price * self.supply


@dataclass
class _Exchange:
    exchange_id: str
    name: str
    volume: Decimal | None
    trading_pairs: int
    socket: bool | None
    exchange_url: str


class SimulatedMarket:
    """The simulated assets and exchanges, moved one tick at a time, rendered as CoinCap sends.

    ``assets`` and ``exchanges`` are the rendered records of the current tick, in rank order;
    they are rebuilt only when the market moves, so paging within a tick is consistent.
    """

    def __init__(
        self, universe: dict[str, Any], *, seed: int, tick_seconds: float, started_at: float
    ) -> None:
        if tick_seconds <= 0:
            raise ValueError(f"tick_seconds must be positive, got {tick_seconds}")
        self._random = random.Random(seed)
        self._tick_seconds = tick_seconds
        self._started_at = started_at
        self._tick = 0
        self._assets = [self._new_asset(item) for item in universe["assets"]]
        self._exchanges = [self._new_exchange(item) for item in universe["exchanges"]]
        self.assets: list[dict[str, Any]] = []
        self.exchanges: list[dict[str, Any]] = []
        self._render()

    @property
    def timestamp_ms(self) -> int:
        """When the current tick happened, in epoch milliseconds."""
        return round((self._started_at + self._tick * self._tick_seconds) * 1000)

    def advance_to(self, now: float) -> None:
        """Move the market to the tick that ``now`` (epoch seconds) falls in."""
        tick = math.floor((now - self._started_at) / self._tick_seconds)
        if tick <= self._tick:
            return
        self._step(ticks=tick - self._tick)
        self._tick = tick
        self._render()

    def _new_asset(self, item: dict[str, Any]) -> _Asset:
        stablecoin = bool(item.get("stablecoin", False))
        # The universe's prices are round figures; a little jitter makes the first tick look real.
        price = Decimal(item["priceUsd"]) * (
            Decimal(1) if stablecoin else _random_factor(self._random, 0.01)
        )
        market_cap = price * Decimal(item["supply"])
        turnover = self._random.uniform(0.3, 1.5) if stablecoin else self._random.uniform(0.01, 0.2)
        asset = _Asset(
            id=item["id"],
            symbol=item["symbol"],
            name=item["name"],
            supply=Decimal(item["supply"]),
            max_supply=Decimal(item["maxSupply"]) if item["maxSupply"] is not None else None,
            price=price,
            price_24h_ago=price * _random_factor(self._random, 0.001 if stablecoin else 0.03),
            vwap=None if item.get("vwapUnknown") else price * _random_factor(self._random, 0.005),
            volume_24h=market_cap * Decimal(turnover),
            explorer=item["explorer"],
            stablecoin=stablecoin,
        )
        asset.price = asset.price.quantize(Decimal(1).scaleb(-price_places(asset.price)))
        return asset

    @staticmethod
    def _new_exchange(item: dict[str, Any]) -> _Exchange:
        volume = item["volumeUsd"]
        return _Exchange(
            exchange_id=item["exchangeId"],
            name=item["name"],
            volume=Decimal(volume) if volume is not None else None,
            trading_pairs=int(item["tradingPairs"]),
            socket=item["socket"],
            exchange_url=item["exchangeUrl"],
        )

    def _step(self, ticks: int) -> None:
        # n independent Gaussian steps add up to one step sqrt(n) times as wide.
        spread = math.sqrt(ticks)
        vwap_keep = (1 - _VWAP_WEIGHT_PER_TICK) ** min(ticks, 1000)
        peg_keep = (1 - _PEG_PULL_PER_TICK) ** min(ticks, 1000)
        # A pull towards the peg bounds the wander: n pulled steps spread this much, not sqrt(n).
        peg_spread = math.sqrt((1 - peg_keep**2) / (1 - (1 - _PEG_PULL_PER_TICK) ** 2))
        with localcontext(_DECIMAL_CONTEXT):
            for asset in self._assets:
                if asset.stablecoin:
                    # Pegged near 1: pulled back towards the peg, with a little noise.
                    deviation = (asset.price - 1) * Decimal(peg_keep) + Decimal(
                        self._random.gauss(0, _STABLECOIN_NOISE_PER_TICK * peg_spread)
                    )
                    price = 1 + deviation
                else:
                    price = asset.price * _random_factor(
                        self._random, _PRICE_VOLATILITY_PER_TICK * spread
                    )
                asset.price = price.quantize(Decimal(1).scaleb(-price_places(price)))
                asset.volume_24h *= _random_factor(
                    self._random, _VOLUME_VOLATILITY_PER_TICK * spread
                )
                if asset.vwap is not None:
                    asset.vwap = asset.vwap * Decimal(vwap_keep) + asset.price * Decimal(
                        1 - vwap_keep
                    )
            for exchange in self._exchanges:
                if exchange.volume is not None:
                    exchange.volume *= _random_factor(
                        self._random, _VOLUME_VOLATILITY_PER_TICK * spread
                    )

    def _render(self) -> None:
        with localcontext(_DECIMAL_CONTEXT):
            ranked_assets = sorted(self._assets, key=lambda asset: (-asset.market_cap, asset.id))
            self.assets = [
                self._asset_record(rank, asset) for rank, asset in enumerate(ranked_assets, 1)
            ]
            total_volume = sum(
                (exchange.volume for exchange in self._exchanges if exchange.volume is not None),
                Decimal(0),
            )
            # Exchanges without a volume rank last, as they would on CoinCap.
            ranked_exchanges = sorted(
                self._exchanges,
                key=lambda exchange: (
                    exchange.volume is None,
                    -(exchange.volume or 0),
                    exchange.exchange_id,
                ),
            )
            self.exchanges = [
                self._exchange_record(rank, exchange, total_volume)
                for rank, exchange in enumerate(ranked_exchanges, 1)
            ]

    def _asset_record(self, rank: int, asset: _Asset) -> dict[str, Any]:
        change_percent = (asset.price / asset.price_24h_ago - 1) * 100
        return {
            "id": asset.id,
            "rank": str(rank),
            "symbol": asset.symbol,
            "name": asset.name,
            "supply": decimal_text(asset.supply, 16),
            "maxSupply": (
                decimal_text(asset.max_supply, 16) if asset.max_supply is not None else None
            ),
            "marketCapUsd": decimal_text(asset.market_cap, 16),
            "volumeUsd24Hr": decimal_text(asset.volume_24h, 16),
            "priceUsd": decimal_text(asset.price, price_places(asset.price)),
            "changePercent24Hr": decimal_text(change_percent, 16),
            "vwap24Hr": (
                decimal_text(asset.vwap, price_places(asset.vwap))
                if asset.vwap is not None
                else None
            ),
            "explorer": asset.explorer,
            "tokens": {},
        }

    def _exchange_record(
        self, rank: int, exchange: _Exchange, total_volume: Decimal
    ) -> dict[str, Any]:
        percent = None
        if exchange.volume is not None and total_volume > 0:
            percent = decimal_text(exchange.volume / total_volume * 100, 36)
        return {
            "exchangeId": exchange.exchange_id,
            "name": exchange.name,
            "rank": str(rank),
            "percentTotalVolume": percent,
            "volumeUsd": (
                decimal_text(exchange.volume, 16) if exchange.volume is not None else None
            ),
            "tradingPairs": str(exchange.trading_pairs),
            "socket": exchange.socket,
            "exchangeUrl": exchange.exchange_url,
            "updated": self.timestamp_ms,
        }


def _random_factor(rng: random.Random, volatility: float) -> Decimal:
    """A log-normal factor around 1: one step of a geometric random walk."""
    return Decimal(math.exp(rng.gauss(0, volatility)))


def load_universe(path: Path = UNIVERSE_PATH) -> dict[str, Any]:
    """The starting assets and exchanges (real names, rough plausible numbers)."""
    universe: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return universe


def create_app(
    *,
    api_key: str | None = None,
    tick_seconds: float = 1.0,
    seed: int | None = None,
    faults: Sequence[Fault] = (),
    universe: dict[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The simulator as an ASGI app; tests serve it in-process through ``httpx.ASGITransport``.

    ``clock`` (epoch seconds) decides which tick the market is at; tests pass a fake one to step
    ticks without sleeping. ``seed`` None picks one at random (it is logged, to replay a run).
    """
    if seed is None:
        seed = secrets.randbelow(2**31)
    market = SimulatedMarket(
        universe if universe is not None else load_universe(),
        seed=seed,
        tick_seconds=tick_seconds,
        started_at=clock(),
    )
    fault_queue = FaultQueue(faults)
    requests_by_endpoint: Counter[str] = Counter()
    statuses_by_endpoint: dict[str, Counter[str]] = {}

    app = FastAPI(
        title="CoinCap simulator",
        description="Simulated CoinCap v3 market data for local development. Not real prices.",
    )

    async def answer(
        endpoint: Endpoint,
        request: Request,
        limit: int,
        offset: int,
        select: Callable[[], list[dict[str, Any]]],
    ) -> Response:
        """A /v3 answer, counted in the stats. ``select`` picks records after the market moved."""
        requests_by_endpoint[endpoint] += 1
        response = await data_response(endpoint, request, limit, offset, select)
        statuses_by_endpoint.setdefault(endpoint, Counter())[str(response.status_code)] += 1
        return response

    async def data_response(
        endpoint: Endpoint,
        request: Request,
        limit: int,
        offset: int,
        select: Callable[[], list[dict[str, Any]]],
    ) -> Response:
        now_ms = round(clock() * 1000)
        if not _has_api_key(request, api_key):
            message = "Unauthorized: a valid API key is required (simulated CoinCap)"
            return _error_response(message, 401, now_ms)
        if not 1 <= limit <= MAX_LIMIT:
            message = f"limit must be between 1 and {MAX_LIMIT}, got {limit}"
            return _error_response(message, 400, now_ms)
        if offset < 0:
            return _error_response(f"offset must be 0 or more, got {offset}", 400, now_ms)
        fault = fault_queue.take(endpoint)
        if fault is not None and fault.mode == "slow":
            await asyncio.sleep(fault.seconds)
        market.advance_to(clock())
        if fault is not None:
            faulty = _faulty_response(fault, market.timestamp_ms)
            if faulty is not None:
                return faulty
        data = select()[offset : offset + limit]
        if fault is not None and fault.mode == "missing_id" and data:
            key = "id" if endpoint == "assets" else "exchangeId"
            data = [{k: v for k, v in data[0].items() if k != key}, *data[1:]]
        return JSONResponse({"data": data, "timestamp": market.timestamp_ms})

    @app.get("/v3/assets")
    async def assets(
        request: Request,
        limit: int = 100,
        offset: int = 0,
        ids: str | None = None,
        search: str | None = None,
    ) -> Response:
        def matching() -> list[dict[str, Any]]:
            selected = market.assets
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

        return await answer("assets", request, limit, offset, matching)

    @app.get("/v3/exchanges")
    async def exchanges(request: Request, limit: int = 100, offset: int = 0) -> Response:
        return await answer("exchanges", request, limit, offset, lambda: market.exchanges)

    @app.get("/v2/{path:path}")
    async def retired_v2(path: str) -> dict[str, Any]:
        return {"data": {"message": V2_RETIREMENT_NOTICE}, "timestamp": round(clock() * 1000)}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        market.advance_to(clock())
        return {
            "status": "ok",
            "simulated": True,
            "assets": len(market.assets),
            "exchanges": len(market.exchanges),
            "tick_seconds": tick_seconds,
            "seed": seed,
            "timestamp": market.timestamp_ms,
            "api_key_required": api_key is not None,
        }

    @app.get("/_simulator/stats")
    async def stats() -> dict[str, Any]:
        return {
            "requests": {"assets": 0, "exchanges": 0, **requests_by_endpoint},
            "statuses": {
                endpoint: dict(counts) for endpoint, counts in statuses_by_endpoint.items()
            },
        }

    @app.get("/_simulator/faults")
    async def list_faults() -> dict[str, Any]:
        return {"faults": fault_queue.describe()}

    @app.post("/_simulator/faults")
    async def add_fault(fault: Fault) -> dict[str, Any]:
        fault_queue.add(fault)
        logger.info("fault knob added: %s", fault.model_dump_json(exclude_defaults=True))
        return {"faults": fault_queue.describe()}

    @app.delete("/_simulator/faults")
    async def clear_faults() -> dict[str, Any]:
        cleared = fault_queue.clear()
        logger.info("fault knobs cleared (%d)", cleared)
        return {"cleared": cleared, "faults": []}

    return app


def _has_api_key(request: Request, api_key: str | None) -> bool:
    if api_key is None:
        return True
    header = request.headers.get("authorization", "")
    offered = [
        header.removeprefix("Bearer ") if header.startswith("Bearer ") else "",
        request.query_params.get("apiKey", ""),
    ]
    return any(secrets.compare_digest(key.encode(), api_key.encode()) for key in offered if key)


def _error_response(
    message: str, status_code: int, timestamp_ms: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": message, "timestamp": timestamp_ms}, status_code=status_code, headers=headers
    )


def _faulty_response(fault: Fault, timestamp_ms: int) -> Response | None:
    """The answer a fault replaces the normal one with; None for faults that only alter it."""
    if fault.mode in ("rate_limit", "quota_exhausted"):
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        message = (
            "Monthly API credit quota exhausted (simulated)"
            if fault.mode == "quota_exhausted"
            else "Too many requests (simulated rate limit)"
        )
        return _error_response(message, 429, timestamp_ms, headers)
    if fault.mode == "server_error":
        return _error_response("Internal server error (simulated)", fault.status, timestamp_ms)
    if fault.mode == "malformed_json":
        truncated = '{"data": [{"id": "bitcoin", "rank": "1", "sym'
        return Response(truncated, status_code=200, media_type="application/json")
    if fault.mode == "retired_v2":
        return JSONResponse({"data": {"message": V2_RETIREMENT_NOTICE}, "timestamp": timestamp_ms})
    return None


def _fault_argument(text: str) -> Fault:
    try:
        return Fault.model_validate_json(text)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(
            f"not a fault knob: {text!r} ({error.error_count()} problem(s): "
            f"{'; '.join(detail['msg'] for detail in error.errors())}); "
            'example: {"mode": "rate_limit", "count": 2, "retry_after": 1}'
        ) from None


def main(argv: Sequence[str] | None = None) -> None:
    from shared.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m services.coincap_simulator",
        description="Serve simulated CoinCap v3 market data locally (not real prices).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=settings.coincap_simulator_port)
    parser.add_argument("--api-key", help="require this key, as CoinCap v3 does")
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="how often prices move")
    parser.add_argument("--seed", type=int, help="random seed, to replay a market")
    parser.add_argument(
        "--fault",
        type=_fault_argument,
        action="append",
        default=[],
        help='a fault knob as JSON, e.g. \'{"mode": "quota_exhausted"}\' (repeatable)',
    )
    parser.add_argument("--log-level", default=settings.log_level)
    args = parser.parse_args(argv)
    if args.tick_seconds <= 0:
        parser.error(f"--tick-seconds must be positive, got {args.tick_seconds}")

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    app = create_app(
        api_key=args.api_key, tick_seconds=args.tick_seconds, seed=seed, faults=args.fault
    )
    logger.info(
        "CoinCap simulator at http://%s:%d/v3 serving SIMULATED market data, not real prices "
        "(tick %g s, seed %d, API key %s, %d fault knob(s))",
        args.host,
        args.port,
        args.tick_seconds,
        seed,
        "required" if args.api_key else "not required",
        len(args.fault),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
