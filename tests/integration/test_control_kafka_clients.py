"""The control service measures Kafka through clients it keeps open: many ``/lag`` and
``/readyz`` requests start no new client, and after the broker restarts the same process
answers again (new clients, a bounded number of them).

The control service runs as a real process on a broker and emulator of the tests' own
(``outage_stack``: the restart stops that broker, never the session's), with the answer cache
off so that every request is a measurement of its own.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.kafka import ensure_topics, pipeline_topics
from tests.harness.environment import OUTAGE_STACK_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, ManagedProcess, settings_from, start_process
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:8]
CONTROL_PORT = offset_port(18170)
CONTROL = f"http://127.0.0.1:{CONTROL_PORT}"
ENVIRONMENT = {
    **OUTAGE_STACK_ENVIRONMENT,
    "COINSTREAM_TOPIC_ASSETS": f"test.clients.assets.{SUFFIX}",
    "COINSTREAM_TOPIC_EXCHANGES": f"test.clients.exchanges.{SUFFIX}",
    "COINSTREAM_TOPIC_DEADLETTER": f"test.clients.deadletter.{SUFFIX}",
    "COINSTREAM_TOPIC_CONTROL": f"test.clients.state.{SUFFIX}",
    "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-clients-{SUFFIX}",
    "COINSTREAM_CONTROL_PORT": str(CONTROL_PORT),
    "COINSTREAM_CONTROL_API_TOKEN": secrets.token_urlsafe(24),
    "COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS": "0",
    "COINSTREAM_CONTROL_REFRESH_SECONDS": "1",
}
BROKER_PORT = int(OUTAGE_STACK_ENVIRONMENT["COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
REQUESTS = 30


@pytest.fixture(scope="module")
def control(outage_stack: LocalStack) -> Iterator[ManagedProcess]:
    outage_stack.ensure_running()
    settings = settings_from(ENVIRONMENT)
    asyncio.run(ensure_topics(settings, pipeline_topics(settings)))
    process = start_process(
        f"control-clients-{SUFFIX}",
        "services.control",
        ENVIRONMENT,
        TEST_STATE_DIR / "logs",
        f"{CONTROL}/healthz",
    )
    yield process
    process.stop()


def counter(name: str, labels: str) -> float:
    """One sample of the control service's ``/metrics`` (0 when it is not there yet)."""
    text = httpx.get(f"{CONTROL}/metrics", timeout=10).text
    found = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def started(client: str) -> float:
    return counter("coinstream_control_kafka_clients_started_total", f'client="{client}"')


def measurements(answer: str) -> float:
    return counter("coinstream_control_measurements_total", f'answer="{answer}"')


def closed_connections_to(port: int) -> int:
    """Connections to ``port`` closed from this machine's side within the last minute: each
    leaves a TIME_WAIT socket behind (state 06 in /proc/net/tcp), whichever process closed it."""
    closed = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "06":
                closed += 1
    return closed


def all_answer() -> bool:
    lag = httpx.get(f"{CONTROL}/lag", timeout=20)
    ready = httpx.get(f"{CONTROL}/readyz", timeout=20)
    return lag.status_code == 200 and ready.status_code == 200


def test_many_measurements_share_one_admin_client_and_one_consumer(
    control: ManagedProcess,
) -> None:
    # On a fresh broker the first group lookup can fail (the offsets topic is being made),
    # which replaces a client once; from then on the same two serve every measurement.
    wait_for(all_answer, "/lag and /readyz to answer 200", 60)
    clients_before = started("admin"), started("consumer")
    lag_before, readiness_before = measurements("lag"), measurements("readiness")
    closed_before = closed_connections_to(BROKER_PORT)
    for _ in range(REQUESTS):
        assert httpx.get(f"{CONTROL}/lag", timeout=20).status_code == 200
        ready = httpx.get(f"{CONTROL}/readyz", timeout=20)
        assert ready.status_code == 200, ready.text
    # Every request was a measurement of its own (the cache is off) ...
    assert measurements("lag") - lag_before >= REQUESTS
    assert measurements("readiness") - readiness_before >= REQUESTS
    # ... and all of them, with the background refresh's, went through the same two clients.
    assert (started("admin"), started("consumer")) == clients_before
    assert 1 <= clients_before[0] <= 2 and 1 <= clients_before[1] <= 2
    # The broker's side agrees: no connection was opened and closed per measurement (a client
    # per measurement left several closed connections behind each time).
    assert closed_connections_to(BROKER_PORT) - closed_before < REQUESTS


def test_after_a_broker_restart_the_same_process_answers_again(
    control: ManagedProcess, stoppable_stack: LocalStack
) -> None:
    wait_for(all_answer, "/lag and /readyz to answer 200", 60)
    stoppable_stack.kafka.stop()
    try:
        lag = httpx.get(f"{CONTROL}/lag", timeout=30)
        assert lag.status_code == 503, lag.text
        assert "did not answer" in lag.json()["detail"]
        ready = httpx.get(f"{CONTROL}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["kafka"]["ok"] is False, ready.text
    finally:
        stoppable_stack.ensure_running()
    wait_for(all_answer, "/lag and /readyz to answer 200 after the restart", 120)
    assert control.is_running()
    # New clients replaced the failed ones, at most one of each per measurement (not several
    # per request, as when each measurement opened its own), and are kept once Kafka answers.
    admins, consumers = started("admin"), started("consumer")
    assert 1 < admins <= measurements("lag") + measurements("readiness")
    assert consumers <= measurements("lag")
    for _ in range(REQUESTS):
        assert all_answer()
    assert (started("admin"), started("consumer")) == (admins, consumers)
