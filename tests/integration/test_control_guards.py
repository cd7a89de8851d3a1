"""The control service's guards, in-process on the real Kafka and emulator
(``tests.harness.control_app``): a process would add nothing to what these check.

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
from collections.abc import AsyncIterator

import httpx
import pytest

from services.control.components import ComponentRegistry
from services.control.desired_state_writer import DesiredStateWriter
from services.control.errors import DependencyUnavailable
from services.control.models import Command
from shared.control_state import Desired, DesiredStateWatcher
from tests.harness.control_app import CONTROL_PORT, control_client, control_environment
from tests.harness.processes import LocalStack, settings_from

TOKEN = secrets.token_urlsafe(24)
BURST = 40
MODES = {
    "open": {"COINSTREAM_CONTROL_ALLOW_OPEN": "true"},
    "token": {"COINSTREAM_CONTROL_API_TOKEN": TOKEN},
}


@pytest.fixture(params=sorted(MODES))
async def control(
    local_stack: LocalStack, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The service in open or token mode, on a control topic of its own; the answer cache is
    long enough that a burst always falls in one window, whatever the machine's speed."""
    environment = control_environment(
        f"guards-{request.param}", COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS="600"
    )
    async with control_client({**environment, **MODES[request.param]}) as client:
        yield request.param, client


async def desired_state(client: httpx.AsyncClient) -> str:
    state: str = (await client.get("/components/asset-ingestor")).json()["desired_state"]
    return state


async def metric_values(client: httpx.AsyncClient, family: str, label: str) -> dict[str, float]:
    """``family``'s samples by the value of ``label``. The counters are the process's, which
    other in-process services share: compare before and after, never absolute values."""
    text = (await client.get("/metrics")).text
    found = re.findall(rf'{family}\{{{label}="(\w+)"\}} (\S+)', text)
    return {value: float(sample) for value, sample in found}


async def test_commands_from_other_pages_or_hosts_are_refused(
    control: tuple[str, httpx.AsyncClient],
) -> None:
    mode, client = control
    auth = {"Authorization": f"Bearer {TOKEN}"} if mode == "token" else {}
    foreign = [
        ({"Origin": "http://evil.example"}, "refused: Origin"),
        ({"Origin": "null"}, "refused: Origin"),
        ({"Host": f"rebind.evil.example:{CONTROL_PORT}"}, "refused: Host"),
        (
            {
                "Host": f"rebind.evil.example:{CONTROL_PORT}",
                "Origin": f"http://rebind.evil.example:{CONTROL_PORT}",
            },
            "refused: Host",
        ),
    ]
    family = "coinstream_control_auth_failures_total"
    before = await metric_values(client, family, "reason")
    for headers, reason in foreign:
        refused = await client.put("/components/asset-ingestor/pause", headers={**auth, **headers})
        assert refused.status_code == 403, (headers, refused.text)
        detail = refused.json()["detail"]
        assert detail.startswith(reason) and "\n" not in detail
    assert await desired_state(client) == "RUNNING"  # nothing changed
    after = await metric_values(client, family, "reason")
    assert after["origin"] - before.get("origin", 0.0) == len(foreign)

    # The service's own origin, and scripts (no Origin), still command it.
    own = await client.put(
        "/components/asset-ingestor/pause", headers={**auth, "Origin": str(client.base_url)}
    )
    assert own.status_code == 202, own.text
    resumed = await client.put("/components/asset-ingestor/resume", headers=auth)
    assert resumed.status_code == 202, resumed.text
    assert await desired_state(client) == "RUNNING"


async def test_a_burst_of_reads_runs_one_measurement_of_each(
    control: tuple[str, httpx.AsyncClient],
) -> None:
    _, client = control
    paths = ("/lag", "/freshness", "/readyz")
    for path in paths:  # a first answer of each, so the burst below falls in its window
        await client.get(path)
    family = "coinstream_control_measurements_total"
    before = await metric_values(client, family, "answer")
    answers = await asyncio.gather(*(client.get(path) for path in paths for _ in range(BURST)))
    after = await metric_values(client, family, "answer")

    assert {answer.status_code for answer in answers} <= {200, 503}
    for answer in ("lag", "freshness", "readiness", "warehouse_check"):
        assert answer in before, f"no measurements counted for {answer}: {before}"
        assert after[answer] == before[answer], f"{answer}: {before} -> {after}"


def test_a_command_planned_from_a_stale_view_is_refused(local_stack: LocalStack) -> None:
    settings = settings_from(control_environment(f"stale-{uuid.uuid4().hex[:6]}"))

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
