"""The control service's guards without any process: where commands may come from, the shared
answer behind /lag, /freshness and /readyz, and the one restart comparison."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from services.control.request_origin import origin_refusal
from services.control.routes import lag as lag_routes
from services.control.shared_answer import MEASUREMENTS, SharedAnswer
from shared.control_state import DesiredState, restart_requested
from shared.settings import Settings

pytestmark = pytest.mark.unit


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


# --- Origin and Host -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8100", None),  # curl, the coinstream command, scripts
        ("localhost:8100", None),
        ("[::1]:8100", None),
        ("127.0.0.1:8100", "http://127.0.0.1:8100"),  # a page the service itself served
        ("LOCALHOST:8100", "http://localhost:8100"),
    ],
)
def test_local_requests_pass(host: str, origin: str | None) -> None:
    assert origin_refusal(settings(), host, origin) is None


@pytest.mark.parametrize(
    ("host", "origin", "named"),
    [
        ("127.0.0.1:8100", "http://evil.example", "Origin"),  # a cross-site form or fetch
        ("127.0.0.1:8100", "null", "Origin"),  # a sandboxed frame or a file:// page
        ("127.0.0.1:8100", "http://127.0.0.1:9999", "Origin"),  # another local port's page
        ("rebind.evil.example:8100", None, "Host"),  # DNS rebinding: the attacker's name
        ("rebind.evil.example:8100", "http://rebind.evil.example:8100", "Host"),
        (None, None, "Host"),
    ],
)
def test_foreign_requests_are_refused_in_one_line(
    host: str | None, origin: str | None, named: str
) -> None:
    refusal = origin_refusal(settings(), host, origin)
    assert refusal is not None and refusal.startswith(f"refused: {named}")
    assert "\n" not in refusal


def test_configured_names_and_a_specific_bind_address_are_local() -> None:
    configured = settings(control_allowed_hosts="control.internal, Ops.Example")
    assert origin_refusal(configured, "control.internal:8100", None) is None
    assert origin_refusal(configured, "ops.example", "https://ops.example") is None
    assert origin_refusal(settings(bind_host="10.1.2.3"), "10.1.2.3:8100", None) is None
    assert origin_refusal(settings(bind_host="0.0.0.0"), "0.0.0.0:8100", None) is not None


# --- one measurement at a time ---------------------------------------------------------------


async def test_concurrent_requests_share_one_measurement() -> None:
    release = asyncio.Event()

    async def measure() -> int:
        await release.wait()
        return 42

    answer = SharedAnswer("unit-shared", measure, keep_seconds=60)
    waiting = [asyncio.create_task(answer.get()) for _ in range(200)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == [42] * 200
    assert await answer.get() == 42  # kept
    assert MEASUREMENTS.labels("unit-shared")._value.get() == 1


async def test_an_error_is_shared_too_and_measured_again_once_stale() -> None:
    calls = 0

    async def measure() -> int:
        nonlocal calls
        calls += 1
        raise TimeoutError("Kafka did not answer")

    answer = SharedAnswer("unit-errors", measure, keep_seconds=0)
    results = await asyncio.gather(*(answer.get() for _ in range(50)), return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert calls == 1
    with pytest.raises(TimeoutError):
        await answer.get()  # keep_seconds=0: a new measurement
    assert calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    release = asyncio.Event()

    async def measure() -> str:
        await release.wait()
        return "ok"

    answer = SharedAnswer("unit-cancel", measure, keep_seconds=60)
    impatient = asyncio.create_task(answer.get())
    patient = asyncio.create_task(answer.get())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == "ok"


def test_the_lag_route_documents_the_shared_measurement() -> None:
    """OpenAPI's description of /lag is the route's docstring: it must say that one cached
    measurement answers every request, not that each request asks the broker."""
    app = FastAPI()
    app.include_router(lag_routes.router)
    description = " ".join(app.openapi()["paths"]["/lag"]["get"]["description"].split())
    assert "Measured from the broker at most once at a time" in description
    assert "COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS" in description
    assert "at each request" not in description


# --- restart generation ----------------------------------------------------------------------


def state(generation: int) -> DesiredState:
    return DesiredState(component="stream-worker", restart_generation=generation)


def test_any_new_generation_is_a_restart_even_after_a_reset() -> None:
    assert restart_requested(3, state(4))
    assert restart_requested(3, state(0))  # the control topic's record was deleted or reset
    assert not restart_requested(3, state(3))
