"""The CoinCap client's test doubles: our simulator served in-process through
``httpx.ASGITransport``, a recorder instead of ``asyncio.sleep`` (so ``Retry-After`` is checked
without spending the time) and one of every HTTP attempt the client reports."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from services.coincap_simulator import create_app, load_universe
from shared.coincap import CoinCapClient

BASE_URL = "http://simulator/v3"
ASSET_COUNT = len(load_universe()["assets"])


class SleepRecorder:
    """Stands in for asyncio.sleep: remembers each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class ResponseRecorder:
    """The client's observer: remembers (endpoint, status) of every HTTP attempt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int | str]] = []

    def __call__(self, endpoint: str, status: int | str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append((endpoint, status))

    @property
    def statuses(self) -> list[int | str]:
        return [status for _, status in self.calls]


def simulator(**options: Any) -> FastAPI:
    # A long tick keeps the market still, so pages of one fetch come from one snapshot.
    return create_app(seed=7, tick_seconds=3600, **options)


def client_for(
    app: FastAPI,
    *,
    sleep: SleepRecorder | None = None,
    on_response: ResponseRecorder | None = None,
    base_url: str = BASE_URL,
    **options: Any,
) -> CoinCapClient:
    settings: dict[str, Any] = {
        "page_limit": 40,
        "max_retries": 3,
        "backoff_initial_seconds": 0.001,
        "backoff_max_seconds": 0.01,
        **options,
    }
    return CoinCapClient(
        base_url,
        transport=httpx.ASGITransport(app=app),
        sleep=sleep or SleepRecorder(),
        on_response=on_response,
        **settings,
    )


async def add_fault(app: FastAPI, **fault: Any) -> None:
    """Sets a fault knob through the simulator's own HTTP API."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://simulator"
    ) as http:
        response = await http.post("/_simulator/faults", json=fault)
        response.raise_for_status()
