"""No input stops an ingestor: the poll loop against a CoinCap served in-process, no Kafka.

A poison page is one failed poll, poison records are dead letters beside the healthy ones, a
``Retry-After`` of 1e12 is a capped pause, and an error no check foresaw is FAILED for a growing
pause, after which the loop tries again by itself.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.coincap_simulator import create_app
from services.coincap_simulator.faults import POISON_VALUES
from services.ingestor import loop as loop_module
from services.ingestor.loop import Ingestor
from services.ingestor.models import IngestorHealth
from services.ingestor.schedule import PollSchedule
from services.ingestor.specs import IngestorSpec, ingestor_spec
from shared.coincap.client import CoinCapClient
from shared.envelope import fits_in_kafka
from shared.settings import Settings

BASE_URL = "http://coincap.invalid/v3"


def settings(tmp_path: Path, **values: Any) -> Settings:
    """No Kafka answers at port 9: polls queue in memory (and the spool under ``tmp_path``)."""
    return Settings(
        _env_file=None,
        state_dir=tmp_path,
        kafka_bootstrap_servers="127.0.0.1:9",
        shutdown_flush_seconds=0.1,
        **values,
    )


def spec_of(configured: Settings, endpoint: str) -> IngestorSpec:
    spec, _ = ingestor_spec(configured, endpoint)  # type: ignore[arg-type]
    return spec


async def eventually(condition: Callable[[], bool], seconds: float) -> None:
    """Return once ``condition()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not within {seconds} s")


def loop_failures(name: str, error: str) -> float:
    labels = {"ingestor": name, "error": error}
    return REGISTRY.get_sample_value("coinstream_ingest_loop_failures_total", labels) or 0.0


# --- the quota pause --------------------------------------------------------------------------


def test_a_retry_after_of_1e12_pauses_for_the_cap_not_forever(tmp_path: Path) -> None:
    configured = settings(tmp_path, quota_pause_max_seconds=600)
    schedule = PollSchedule(spec_of(configured, "assets"), configured)
    schedule.pause_for_quota(1e12)  # past the last date a datetime holds
    assert schedule.quota_exhausted_until is not None
    assert 590 < schedule.quota_pause_remaining() <= 600


def test_a_short_retry_after_is_honoured_and_the_cap_has_a_ceiling(tmp_path: Path) -> None:
    configured = settings(tmp_path)
    schedule = PollSchedule(spec_of(configured, "assets"), configured)
    schedule.pause_for_quota(30)
    assert 25 < schedule.quota_pause_remaining() <= 30
    with pytest.raises(ValidationError, match="quota_pause_max_seconds"):
        settings(tmp_path, quota_pause_max_seconds=1e12)


async def test_a_poll_answered_429_with_retry_after_1e12_pauses_and_stays_running(
    tmp_path: Path,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "1e12"}, json={"error": "quota"})

    configured = settings(tmp_path)
    client = CoinCapClient(BASE_URL, transport=httpx.MockTransport(answer), max_retries=0)
    ingestor = Ingestor(spec_of(configured, "assets"), configured, client)
    assert await ingestor.poll_once() is None
    health = IngestorHealth.of(ingestor)
    assert health.state == "RUNNING" and health.polls_failed == 1
    assert health.quota_exhausted_until is not None
    assert health.quota_exhausted_until <= datetime.now(UTC) + timedelta(seconds=86_400)
    await client.aclose()


# --- poison ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["assets", "exchanges"])
async def test_poison_records_are_dead_lettered_beside_the_healthy_ones(
    tmp_path: Path, endpoint: Literal["assets", "exchanges"]
) -> None:
    simulator = create_app(seed=7, tick_seconds=3600)
    transport = httpx.ASGITransport(app=simulator)
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as http:
        knob = {"mode": "poison", "endpoint": endpoint}
        (await http.post("/_simulator/faults", json=knob)).raise_for_status()
    configured = settings(tmp_path)
    spec = spec_of(configured, endpoint)
    client = CoinCapClient("http://simulator/v3", transport=transport, page_limit=40)
    ingestor = Ingestor(spec, configured, client)

    poll = await ingestor.poll_once()
    assert poll is not None
    messages = poll.undelivered
    dead = [json.loads(m.value) for m in messages if m.topic == configured.topic_deadletter]
    data = [m for m in messages if m.topic == spec.topic]
    poison = len(POISON_VALUES[endpoint])
    assert len(dead) == poison and all(letter["reason"] for letter in dead)
    assert len(data) == len(messages) - poison > 0
    assert all(fits_in_kafka(m.key, m.value) for m in messages)
    assert IngestorHealth.of(ingestor).state == "RUNNING"
    await client.aclose()


# --- errors no check foresaw ------------------------------------------------------------------


async def test_an_unexpected_error_is_failed_for_a_growing_pause_then_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "LOOP_RETRY_FIRST_PAUSE_SECONDS", 0.05)
    failures = 3
    asked_at: list[float] = []
    state_when_asked: list[str] = []
    configured = settings(tmp_path, poll_interval_seconds=0.01)
    spec = spec_of(configured, "assets")

    def answer(request: httpx.Request) -> httpx.Response:
        asked_at.append(time.monotonic())
        state_when_asked.append(ingestor.state)
        if len(asked_at) <= failures:
            raise RuntimeError("a fault no check foresaw")
        page = {"data": [{"id": "bitcoin", "rank": "1"}], "timestamp": int(time.time() * 1000)}
        return httpx.Response(200, json=page)

    client = CoinCapClient(BASE_URL, transport=httpx.MockTransport(answer), max_retries=0)
    ingestor = Ingestor(spec, configured, client)
    before = loop_failures(spec.name, "RuntimeError")
    run = asyncio.create_task(ingestor.run())
    try:
        await eventually(lambda: ingestor.polls_succeeded > 0, 20)
    finally:
        await ingestor.stop()
        await asyncio.wait_for(run, 30)
        await client.aclose()

    # Each failure showed FAILED until a poll went through again, with no command sent.
    assert state_when_asked == ["RUNNING", "FAILED", "FAILED", "FAILED"]
    assert ingestor.state == "RUNNING"
    assert loop_failures(spec.name, "RuntimeError") - before == failures
    assert ingestor.last_error is not None and "RuntimeError" in ingestor.last_error
    # The pauses grow: 0.05 s, then 0.1 s, then 0.2 s (each plus up to 0.05 s of jitter).
    gaps = [later - earlier for earlier, later in itertools.pairwise(asked_at)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps


async def test_a_control_command_ends_the_pause_after_a_failure_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop_module, "LOOP_RETRY_FIRST_PAUSE_SECONDS", 60.0)
    configured = settings(tmp_path, poll_interval_seconds=0.01)

    def answer(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a fault no check foresaw")

    client = CoinCapClient(BASE_URL, transport=httpx.MockTransport(answer), max_retries=0)
    ingestor = Ingestor(spec_of(configured, "assets"), configured, client)
    run = asyncio.create_task(ingestor.run())
    try:
        await eventually(lambda: ingestor.state == "FAILED", 10)
        health = IngestorHealth.of(ingestor)
        assert health.status == "degraded"
        assert "trying again by itself" in str(health.last_error)
        # A pause command ends the 60 s pause at once, and the loop holds PAUSED.
        ingestor.apply_desired_state(ingestor.desired.model_copy(update={"state": "PAUSED"}))
        await eventually(lambda: ingestor.state == "PAUSED", 5)
    finally:
        await ingestor.stop()
        await asyncio.wait_for(run, 30)
        await client.aclose()
