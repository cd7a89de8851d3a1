"""The control service's guards as real processes against the real Kafka and emulator.

- Commands from another web page (Origin) or under a foreign Host (DNS rebinding) are refused
  in open and in token mode, and change nothing.
- A burst of /lag, /freshness and /readyz requests runs one measurement of each, not one per
  request.
- A command planned from a view that has not read the previous command back is refused.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Iterator

import httpx
import pytest

from services.control.components import ComponentRegistry
from services.control.desired_state_writer import DesiredStateWriter
from services.control.errors import DependencyUnavailable
from services.control.models import Command
from shared.control_state import Desired, DesiredStateWatcher
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, settings_from, start_process

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:8]
TOKEN = secrets.token_urlsafe(24)
OPEN_PORT = offset_port(18150)
TOKEN_PORT = offset_port(18151)
BURST = 40


def environment(port: int, mode: str) -> dict[str, str]:
    return {
        **TEST_ENVIRONMENT,
        "COINSTREAM_TOPIC_CONTROL": f"test.guards.control.{mode}.{SUFFIX}",
        "COINSTREAM_TOPIC_ASSETS": f"test.guards.assets.{SUFFIX}",
        "COINSTREAM_TOPIC_EXCHANGES": f"test.guards.exchanges.{SUFFIX}",
        "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-guards-worker-{SUFFIX}",
        "COINSTREAM_BIGQUERY_DATASET": f"guards_{SUFFIX}",
        "COINSTREAM_CONTROL_PORT": str(port),
        # Nothing listens on these: the components show as UNREACHABLE, a valid answer.
        "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(18152)),
        "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(18153)),
        "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(18154)),
        # Long enough that a burst always falls in one window, whatever the machine's speed.
        "COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS": "600",
        **(
            {"COINSTREAM_CONTROL_API_TOKEN": TOKEN}
            if mode == "token"
            else {"COINSTREAM_CONTROL_ALLOW_OPEN": "true"}
        ),
    }


@pytest.fixture(scope="module")
def services(local_stack: LocalStack) -> Iterator[dict[str, str]]:
    started = {}
    try:
        for mode, port in (("open", OPEN_PORT), ("token", TOKEN_PORT)):
            base_url = f"http://127.0.0.1:{port}"
            started[mode] = (
                base_url,
                start_process(
                    f"control-guards-{mode}-{SUFFIX}",
                    "services.control",
                    environment(port, mode),
                    TEST_STATE_DIR / "logs",
                    f"{base_url}/healthz",
                ),
            )
        yield {mode: base_url for mode, (base_url, _) in started.items()}
    finally:
        for _, process in started.values():
            process.stop()


def command(base_url: str, verb: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.put(f"{base_url}/components/asset-ingestor/{verb}", headers=headers, timeout=30)


def desired_state(base_url: str) -> str:
    state: str = httpx.get(f"{base_url}/components/asset-ingestor", timeout=30).json()[
        "desired_state"
    ]
    return state


@pytest.mark.parametrize("mode", ["open", "token"])
def test_commands_from_other_pages_or_hosts_are_refused(
    services: dict[str, str], mode: str
) -> None:
    base_url = services[mode]
    port = base_url.rsplit(":", 1)[1]
    auth = {"Authorization": f"Bearer {TOKEN}"} if mode == "token" else {}
    foreign = [
        ({"Origin": "http://evil.example"}, "refused: Origin"),
        ({"Origin": "null"}, "refused: Origin"),
        ({"Host": f"rebind.evil.example:{port}"}, "refused: Host"),
        (
            {"Host": f"rebind.evil.example:{port}", "Origin": f"http://rebind.evil.example:{port}"},
            "refused: Host",
        ),
    ]
    for headers, reason in foreign:
        refused = command(base_url, "pause", {**auth, **headers})
        assert refused.status_code == 403, (headers, refused.text)
        detail = refused.json()["detail"]
        assert detail.startswith(reason) and "\n" not in detail
    assert desired_state(base_url) == "RUNNING"  # nothing changed

    # The service's own origin, and scripts (no Origin), still command it.
    own = command(base_url, "pause", {**auth, "Origin": base_url})
    assert own.status_code == 202, own.text
    assert command(base_url, "resume", auth).status_code == 202
    assert desired_state(base_url) == "RUNNING"

    metrics = httpx.get(f"{base_url}/metrics", timeout=30).text
    assert re.search(r'coinstream_control_auth_failures_total\{reason="origin"\} [4-9]', metrics)


def measurements(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    found = re.findall(r'coinstream_control_measurements_total\{answer="(\w+)"\} (\S+)', text)
    return {answer: float(value) for answer, value in found}


def test_a_burst_of_reads_runs_one_measurement_of_each(services: dict[str, str]) -> None:
    base_url = services["open"]
    paths = ("/lag", "/freshness", "/readyz")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            return await asyncio.gather(*(http.get(path) for path in paths for _ in range(BURST)))

    for path in paths:  # a first answer of each, so the burst below falls in its window
        httpx.get(f"{base_url}{path}", timeout=60)
    before = measurements(base_url)
    answers = asyncio.run(burst())
    after = measurements(base_url)

    assert {answer.status_code for answer in answers} <= {200, 503}
    for answer in ("lag", "freshness", "readiness", "warehouse_check"):
        assert answer in before, f"no measurements counted for {answer}: {before}"
        assert after[answer] == before[answer], f"{answer}: {before} -> {after}"


def test_a_command_planned_from_a_stale_view_is_refused(local_stack: LocalStack) -> None:
    settings = settings_from(environment(OPEN_PORT, f"stale-{uuid.uuid4().hex[:6]}"))

    async def scenario() -> None:
        watcher = DesiredStateWatcher(settings, client_id="guards-stale-test")
        writer = DesiredStateWriter(settings)
        async with httpx.AsyncClient() as http:
            registry = ComponentRegistry(settings, watcher, writer, http, read_back_seconds=2)
            await watcher.start()
            await asyncio.wait_for(watcher.wait_caught_up(), 60)
            try:
                # The view stops following the topic: the next write cannot be read back.
                await watcher.stop()
                paused = await registry.command("asset-ingestor", Command.PAUSE, None, "test")
                assert paused.changed and paused.desired_state is Desired.PAUSED
                assert watcher.get("asset-ingestor").state is Desired.RUNNING  # stale
                with pytest.raises(DependencyUnavailable, match="stale"):
                    await registry.command("asset-ingestor", Command.START, None, "test")

                # Once the view has read the pause back, commands are planned from it again.
                await watcher.start()
                resumed = await registry.command("asset-ingestor", Command.RESUME, None, "test")
                assert resumed.changed and resumed.desired_state is Desired.RUNNING
            finally:
                await watcher.stop()
                await writer.stop()

    asyncio.run(scenario())
