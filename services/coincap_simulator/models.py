"""What the simulator answers besides the records: CoinCap's error and v2-notice bodies, and the
simulator's own ``/healthz`` and ``/_simulator/stats``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

Endpoint = Literal["assets", "exchanges", "history"]
"""The /v3 endpoints the simulator serves (``history``: ``/assets/{id}/history``), and a fault
knob may target."""

V2_RETIREMENT_NOTICE = (
    "We are deprecating this version of the CoinCap API on March 31, 2025. "
    "Use CoinCap v3 at https://rest.coincap.io/v3 (simulated notice: only the first sentence "
    "is CoinCap's own wording)."
)


def retirement_notice(timestamp_ms: int) -> dict[str, Any]:
    """The 200 answer CoinCap v2 gives today in place of data."""
    return {"data": {"message": V2_RETIREMENT_NOTICE}, "timestamp": timestamp_ms}


def error_response(
    message: str, status_code: int, timestamp_ms: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error as CoinCap v3 sends it: ``{"error": ..., "timestamp": ...}``."""
    return JSONResponse(
        {"error": message, "timestamp": timestamp_ms}, status_code=status_code, headers=headers
    )


class SimulatorHealth(BaseModel):
    """``/healthz``: alive, and saying that its data is simulated."""

    status: Literal["ok"] = "ok"
    simulated: Literal[True] = True
    assets: int
    exchanges: int
    tick_seconds: float
    seed: int = Field(description="the random seed; pass it as --seed to replay this market")
    timestamp: int = Field(description="the current tick's time, epoch milliseconds")
    api_key_required: bool


def _no_requests_yet() -> dict[Endpoint, int]:
    return {"assets": 0, "exchanges": 0}


class RequestStats(BaseModel):
    """Requests per /v3 endpoint and the statuses answered, since the simulator started.

    A request counts when it arrives and its status when it is answered, so a ``slow`` answer
    shows as a request without a status yet.
    """

    requests: dict[Endpoint, int] = Field(default_factory=_no_requests_yet)
    statuses: dict[Endpoint, dict[str, int]] = Field(default_factory=dict)

    def count_request(self, endpoint: Endpoint) -> None:
        # History is counted from its first request on, so listings-only stats stay as they were.
        self.requests[endpoint] = self.requests.get(endpoint, 0) + 1

    def count_status(self, endpoint: Endpoint, status_code: int) -> None:
        answered = self.statuses.setdefault(endpoint, {})
        answered[str(status_code)] = answered.get(str(status_code), 0) + 1
