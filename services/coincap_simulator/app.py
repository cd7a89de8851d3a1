"""The simulator's FastAPI app: assembly only (its state and its routers)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from fastapi import FastAPI

from services.coincap_simulator.dependencies import SimulatorState
from services.coincap_simulator.faults import Fault, FaultQueue
from services.coincap_simulator.market import SimulatedMarket, load_universe
from services.coincap_simulator.models import RequestStats
from services.coincap_simulator.routes import coincap, served, simulator


def create_app(
    *,
    seed: int,
    api_key: str | None = None,
    tick_seconds: float = 1.0,
    faults: Sequence[Fault] = (),
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The simulator as an ASGI app; tests serve it in-process through ``httpx.ASGITransport``.

    ``seed`` fixes the market's random walk, so the same seed replays the same market.
    ``clock`` (epoch seconds) decides which tick the market is at; tests pass a fake one to step
    ticks without sleeping.
    """
    app = FastAPI(
        title="CoinCap simulator",
        description="Simulated CoinCap v3 market data for local development. Not real prices.",
    )
    app.state.simulator = SimulatorState(
        market=SimulatedMarket(
            load_universe(), seed=seed, tick_seconds=tick_seconds, started_at=clock()
        ),
        faults=FaultQueue(faults),
        stats=RequestStats(),
        api_key=api_key,
        seed=seed,
        clock=clock,
    )
    app.include_router(coincap.router)
    app.include_router(simulator.router)
    app.include_router(served.router)
    return app
