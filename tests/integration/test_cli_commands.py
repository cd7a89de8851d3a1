"""The ``coinstream`` command (the console script ``uv sync`` installs) against a real control
service on the real Kafka broker and BigQuery emulator.

The components themselves are not started: the control service reports them UNREACHABLE,
which is all the state table needs, and commands change desired states in the control topic
whether or not a component is there to obey them.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.control_api import ControlApi
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, launch, subprocess_environment, wait_until_answering

COINSTREAM = Path(sys.executable).parent / "coinstream"
SUFFIX = uuid.uuid4().hex[:8]
TOKEN = secrets.token_urlsafe(24)
CONTROL_PORT = offset_port(18130)
DEAD_PORT = offset_port(18139)  # nothing listens here
CONTROL_URL = f"http://127.0.0.1:{CONTROL_PORT}"

ENVIRONMENT = {
    **TEST_ENVIRONMENT,
    "COINSTREAM_TOPIC_ASSETS": f"test.cli.assets.{SUFFIX}",
    "COINSTREAM_TOPIC_EXCHANGES": f"test.cli.exchanges.{SUFFIX}",
    "COINSTREAM_TOPIC_DEADLETTER": f"test.cli.deadletter.{SUFFIX}",
    "COINSTREAM_TOPIC_CONTROL": f"test.cli.control.{SUFFIX}",
    "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-cli-worker-{SUFFIX}",
    "COINSTREAM_BIGQUERY_DATASET": f"cli_{SUFFIX}",
    "COINSTREAM_CONTROL_PORT": str(CONTROL_PORT),
    # Where no component listens: each is UNREACHABLE.
    "COINSTREAM_ASSET_INGESTOR_PORT": str(offset_port(18131)),
    "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(offset_port(18132)),
    "COINSTREAM_STREAM_WORKER_PORT": str(offset_port(18133)),
}
WITH_TOKEN = {**ENVIRONMENT, "COINSTREAM_CONTROL_API_TOKEN": TOKEN}


@pytest.fixture(scope="module")
def control(local_stack: LocalStack) -> Iterator[ControlApi]:
    process = launch(
        f"control-cli-{SUFFIX}", "services.control", WITH_TOKEN, TEST_STATE_DIR / "logs"
    )
    try:
        wait_until_answering(process, f"{CONTROL_URL}/healthz")
        yield ControlApi(CONTROL_URL, TOKEN)
    finally:
        process.stop()


def coinstream(*arguments: str, environment: dict[str, str] = WITH_TOKEN) -> Any:
    """Run the installed command as a user would, in a wide terminal, and return its result."""
    return subprocess.run(
        [str(COINSTREAM), *arguments],
        env=subprocess_environment({**environment, "COLUMNS": "200"}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line_error(result: Any) -> str:
    """The error a failed command printed: exactly one line on stderr, nothing on stdout."""
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("coinstream: ")
    error: str = result.stderr
    return error


def desired(control: ControlApi, component: str) -> dict[str, Any]:
    return control.component(component)


def test_status_shows_every_component_in_one_table(control: ControlApi) -> None:
    result = coinstream("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"coinstream at {CONTROL_URL}: ready" in lines[0]
    for header in ("component", "desired", "observed", "lag", "freshness"):
        assert header in result.stdout
    for component in ("asset-ingestor", "exchange-ingestor", "stream-worker"):
        row = next(line for line in lines if component in line)
        assert "UNREACHABLE" in row  # observed: nothing listens on its port
        assert any(state in row for state in ("RUNNING", "PAUSED", "STOPPED"))  # desired


def test_status_json_is_the_control_services_answers(control: ControlApi) -> None:
    result = coinstream("status", "--json")
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # no colour codes for scripts
    answer = json.loads(result.stdout)
    assert answer["control_url"] == CONTROL_URL
    assert answer["ready"] is True
    assert [c["name"] for c in answer["components"]] == [
        "asset-ingestor",
        "exchange-ingestor",
        "stream-worker",
    ]
    assert [c["desired_state"] for c in answer["components"]] == [
        c["desired_state"] for c in control.json("/components")["components"]
    ]
    assert answer["lag"]["group"] == ENVIRONMENT["COINSTREAM_STREAM_CONSUMER_GROUP"]
    assert {table["table"] for table in answer["freshness"]["tables"]} == {"assets", "exchanges"}


def test_each_command_changes_the_desired_state(control: ControlApi) -> None:
    component = "exchange-ingestor"
    before = desired(control, component)["restart_generation"]
    for command, state in (
        ("pause", "PAUSED"),
        ("resume", "RUNNING"),
        ("stop", "STOPPED"),
        ("start", "RUNNING"),
    ):
        result = coinstream(command, component, "--reason", f"cli test {command}")
        assert result.returncode == 0, result.stderr
        assert f"{component} will" in result.stdout
        now = desired(control, component)
        assert now["desired_state"] == state, command
        assert now["reason"] == f"cli test {command}"
        assert "coinstream command" in now["requested_by"]

    result = coinstream("restart", component, "--json")
    assert result.returncode == 0, result.stderr
    accepted = json.loads(result.stdout)
    assert accepted["changed"] is True and accepted["restart_generation"] == before + 1
    assert desired(control, component)["restart_generation"] == before + 1

    # Repeating a command changes nothing, and says so.
    coinstream("pause", component)
    again = json.loads(coinstream("pause", component, "--json").stdout)
    assert again["changed"] is False and again["desired_state"] == "PAUSED"
    coinstream("resume", component)


def test_a_command_that_does_not_apply_is_one_line_saying_what_to_do(
    control: ControlApi,
) -> None:
    assert coinstream("stop", "asset-ingestor").returncode == 0
    try:
        error = one_line_error(coinstream("pause", "asset-ingestor"))
        assert "asset-ingestor is STOPPED" in error and "start it first" in error
    finally:
        coinstream("start", "asset-ingestor")


def test_the_token_make_run_wrote_is_used(control: ControlApi, tmp_path: Path) -> None:
    (tmp_path / "control-token").write_text(TOKEN + "\n")
    from_file = {**ENVIRONMENT, "COINSTREAM_STATE_DIR": str(tmp_path)}
    result = coinstream("pause", "stream-worker", environment=from_file)
    assert result.returncode == 0, result.stderr
    assert desired(control, "stream-worker")["desired_state"] == "PAUSED"
    assert coinstream("resume", "stream-worker", environment=from_file).returncode == 0
    assert TOKEN not in result.stdout + result.stderr


def test_a_wrong_token_is_refused_in_one_line_that_does_not_show_it(
    control: ControlApi, tmp_path: Path
) -> None:
    wrong = secrets.token_urlsafe(24)
    before = desired(control, "asset-ingestor")["desired_state"]
    result = coinstream(
        "pause",
        "asset-ingestor",
        environment={**ENVIRONMENT, "COINSTREAM_CONTROL_API_TOKEN": wrong},
    )
    error = one_line_error(result)
    assert "403" in error and "wrong token" in error and "COINSTREAM_CONTROL_API_TOKEN" in error
    assert wrong not in error and TOKEN not in error
    assert desired(control, "asset-ingestor")["desired_state"] == before

    # No token anywhere: 401, and where to put one.
    nothing = {**ENVIRONMENT, "COINSTREAM_STATE_DIR": str(tmp_path)}
    error = one_line_error(coinstream("pause", "asset-ingestor", environment=nothing))
    assert "401" in error and "make run" in error and str(tmp_path / "control-token") in error


def test_an_unknown_component_names_the_valid_ones(control: ControlApi) -> None:
    error = one_line_error(coinstream("pause", "nosuch-ingestor"))
    assert "unknown component 'nosuch-ingestor'" in error
    assert "asset-ingestor, exchange-ingestor, stream-worker" in error


@pytest.mark.parametrize(
    "arguments", [("status",), ("status", "--json"), ("stop", "stream-worker")]
)
def test_a_control_service_that_is_not_running_is_one_line(arguments: tuple[str, ...]) -> None:
    stopped = {**WITH_TOKEN, "COINSTREAM_CONTROL_PORT": str(DEAD_PORT)}
    error = one_line_error(coinstream(*arguments, environment=stopped))
    assert error.startswith(
        f"coinstream: the control service at http://127.0.0.1:{DEAD_PORT} does not answer; "
        "start it with `make run`"
    )
    assert TOKEN not in error
