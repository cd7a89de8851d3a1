"""What the simulator's routes get injected with ``Depends``: the state of one simulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.coincap_simulator.faults import FaultQueue
from services.coincap_simulator.market import SimulatedMarket
from services.coincap_simulator.models import RequestStats


@dataclass
class SimulatorState:
    """Everything one simulator app remembers between requests, made by ``create_app``."""

    market: SimulatedMarket
    faults: FaultQueue
    stats: RequestStats
    api_key: str | None
    """The key /v3 requests must offer; None lets every request in."""
    seed: int
    clock: Callable[[], float]
    """Epoch seconds; decides which tick the market is at."""


def get_state(request: Request) -> SimulatorState:
    state: SimulatorState = request.app.state.simulator
    return state


StateDep = Annotated[SimulatorState, Depends(get_state)]
