"""The asset ingestor as a process: a broker outage and a SIGTERM mid-poll lose nothing.

It delivers to a broker of its own (``stoppable_stack``): the outage stops that one, never the
session's."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness.broker import read_topic, topic_end_total
from tests.harness.environment import (
    OUTAGE_STACK_ENVIRONMENT,
    SIMULATOR_PORT,
    TEST_STATE_DIR,
    offset_port,
)
from tests.harness.processes import LocalStack, ManagedProcess
from tests.harness.waiting import wait_for

INGESTOR_PORT = offset_port(18101)
HEALTH_URL = f"http://127.0.0.1:{INGESTOR_PORT}/healthz"
POLLS_DURING_OUTAGE = 10
FAULTS_URL = f"http://127.0.0.1:{SIMULATOR_PORT}/_simulator/faults"


def health() -> dict[str, Any]:
    response = httpx.get(HEALTH_URL, timeout=5)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def asset_ingestor(stoppable_stack: LocalStack, simulator: str) -> Iterator[ManagedProcess]:
    """``python -m services.ingestor assets`` on a topic of its own, polling every second."""
    topic = f"test.service.assets.{uuid.uuid4().hex[:8]}"
    process = ManagedProcess(
        f"asset-ingestor-{topic}",
        [sys.executable, "-m", "services.ingestor", "assets"],
        {
            **OUTAGE_STACK_ENVIRONMENT,
            "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
            "COINSTREAM_ASSET_INGESTOR_PORT": str(INGESTOR_PORT),
            "COINSTREAM_TOPIC_ASSETS": topic,
            "COINSTREAM_POLL_INTERVAL_SECONDS": "1",
            # Every poll's "fetched" line, which the ingestor logs at DEBUG after its first.
            "COINSTREAM_LOG_LEVEL": "DEBUG",
        },
        TEST_STATE_DIR / "logs",
    )
    httpx.delete(FAULTS_URL).raise_for_status()
    process.start()
    wait_for(lambda: health()["kafka_connected"], "the ingestor to deliver", 60)
    yield process
    process.stop()
    httpx.delete(FAULTS_URL).raise_for_status()


def fetched_poll_ids(log: str) -> list[str]:
    """Poll ids in the order the ingestor logged them as fetched."""
    ids = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if "fetched" in entry.get("message", "") and "poll_id" in entry:
            ids.append(entry["poll_id"])
    return ids


def check_every_poll_arrived_once_in_order(
    messages: list[Any], poll_ids: list[str], records_per_poll: int
) -> None:
    by_poll: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        envelope = json.loads(message.value)
        by_poll[envelope["poll_id"]].append(message.key.decode())
    assert set(by_poll) == set(poll_ids), "a fetched poll is missing from Kafka"
    for poll_id, keys in by_poll.items():
        assert len(keys) == records_per_poll, f"poll {poll_id}: {len(keys)} records"
        assert len(set(keys)) == records_per_poll, f"poll {poll_id} has duplicates"
    # Per key, the polls arrive in the order they were fetched.
    order = {poll_id: index for index, poll_id in enumerate(poll_ids)}
    polls_of_key: dict[str, list[int]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        polls_of_key[message.key.decode()].append(order[json.loads(message.value)["poll_id"]])
    for key, sequence in polls_of_key.items():
        assert sequence == sorted(sequence), f"{key} arrived out of order"


def test_polls_continue_through_a_broker_outage_and_arrive_once_in_order(
    stoppable_stack: LocalStack, asset_ingestor: ManagedProcess
) -> None:
    records_per_poll = len(httpx.get(f"{local_stack_simulator()}?limit=2000").json()["data"])
    stoppable_stack.kafka.stop()
    outage_started = health()["polls_succeeded"]
    wait_for(
        lambda: health()["polls_succeeded"] >= outage_started + POLLS_DURING_OUTAGE,
        f"{POLLS_DURING_OUTAGE} polls with the broker down (did polling stop with it?)",
        60,
    )
    wait_for(lambda: not health()["kafka_connected"], "the ingestor to see Kafka gone", 30)
    during = health()
    assert during["polls_succeeded"] >= outage_started + POLLS_DURING_OUTAGE
    assert during["kafka_connected"] is False
    assert during["status"] == "degraded"
    assert during["buffered_records"] >= POLLS_DURING_OUTAGE * records_per_poll
    assert during["dropped_records"] == 0

    stoppable_stack.ensure_running()
    wait_for(lambda: health()["buffered_records"] == 0, "the buffer to drain", 90)
    assert asset_ingestor.stop() in (0, -signal.SIGTERM)

    topic = asset_ingestor.environment["COINSTREAM_TOPIC_ASSETS"]
    poll_ids = fetched_poll_ids(asset_ingestor.log_text())
    messages = asyncio.run(
        read_topic(
            stoppable_stack.settings.kafka_bootstrap_servers,
            topic,
            expected=len(poll_ids) * records_per_poll,
        )
    )
    # read_topic reads to the end offsets: a copy after the expected count is among messages.
    assert topic_end_total(stoppable_stack.settings, topic) == len(messages)
    check_every_poll_arrived_once_in_order(messages, poll_ids, records_per_poll)


def test_sigterm_mid_poll_finishes_the_poll_and_delivers_it(
    stoppable_stack: LocalStack, asset_ingestor: ManagedProcess
) -> None:
    records_per_poll = len(httpx.get(f"{local_stack_simulator()}?limit=2000").json()["data"])
    httpx.post(FAULTS_URL, json={"mode": "slow", "seconds": 3, "count": 1}).raise_for_status()
    wait_for(lambda: httpx.get(FAULTS_URL).json()["faults"] == [], "the slow poll to start", 10)
    # The simulator has taken the knob: the poll is in flight, its answer 3 s away.
    polls_before = fetched_poll_ids(asset_ingestor.log_text())
    assert asset_ingestor.process is not None
    asset_ingestor.process.send_signal(signal.SIGTERM)
    asset_ingestor.process.wait(30)

    poll_ids = fetched_poll_ids(asset_ingestor.log_text())
    assert len(poll_ids) == len(polls_before) + 1, "the poll in flight was not finished"
    topic = asset_ingestor.environment["COINSTREAM_TOPIC_ASSETS"]
    messages = asyncio.run(
        read_topic(
            stoppable_stack.settings.kafka_bootstrap_servers,
            topic,
            expected=len(poll_ids) * records_per_poll,
        )
    )
    # read_topic reads to the end offsets: a copy after the expected count is among messages.
    assert topic_end_total(stoppable_stack.settings, topic) == len(messages)
    check_every_poll_arrived_once_in_order(messages, poll_ids, records_per_poll)


def local_stack_simulator() -> str:
    return f"http://127.0.0.1:{SIMULATOR_PORT}/v3/assets"
