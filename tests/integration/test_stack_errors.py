"""Problems a user can fix get one clear line and exit status 2, not a stack trace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from shared.settings import PROJECT_ROOT
from tests.harness.environment import offset_port
from tests.harness.processes import subprocess_environment


def run_stack(command: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deploy.local.stack", command],
        cwd=PROJECT_ROOT,
        env=subprocess_environment(environment),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stack_environment(state_dir: Path) -> dict[str, str]:
    """Ports of this test process's own, below the kernel's ephemeral range: a port the kernel
    handed out for probing could be taken by any client's connection before the stack checks
    it, and the stack would then rightly report it in use instead of the error under test."""
    return {
        "COINSTREAM_STATE_DIR": str(state_dir),
        "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(18150)}",
        "COINSTREAM_KAFKA_CONTROLLER_PORT": str(offset_port(18151)),
        "COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(18152)}",
        "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": str(offset_port(18153)),
    }


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coinstream: ")
    for phrase in phrases:
        assert phrase in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_java_is_named_with_how_to_install_it(tmp_path: Path) -> None:
    environment = stack_environment(tmp_path)
    # A PATH holding only this Python: no java, no mvn.
    python_only = tmp_path / "bin"
    python_only.mkdir()
    (python_only / "python").symlink_to(sys.executable)
    environment["PATH"] = str(python_only)
    result = run_stack("setup", environment)
    assert_one_clear_line(result, "`java` was not found", "apt-get install")


def test_port_in_use_names_the_port_and_the_setting(tmp_path: Path) -> None:
    environment = stack_environment(tmp_path)
    port = int(environment["COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = run_stack("kafka", environment)
    assert_one_clear_line(
        result, f"port {port}", "already in use", "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"
    )


def test_corrupt_kafka_state_says_to_clean_state(tmp_path: Path) -> None:
    kafka_dir = tmp_path / "kafka"
    kafka_dir.mkdir()
    (kafka_dir / "meta.properties").write_text("this is not what Kafka wrote\n")
    result = run_stack("kafka", stack_environment(tmp_path))
    assert_one_clear_line(result, str(kafka_dir), "corrupt", "make clean-state")


def test_corrupt_emulator_state_says_to_clean_state(tmp_path: Path) -> None:
    bigquery_dir = tmp_path / "bigquery"
    bigquery_dir.mkdir()
    (bigquery_dir / "bqemulator.duckdb").write_bytes(os.urandom(8192))
    result = run_stack("bigquery", stack_environment(tmp_path))
    assert_one_clear_line(result, "bqemulator.duckdb", "corrupt", "make clean-state")


def test_invalid_setting_is_reported_without_a_traceback(tmp_path: Path) -> None:
    environment = stack_environment(tmp_path)
    environment["COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"] = "no-port-here"
    result = run_stack("wait", environment)
    assert_one_clear_line(result, "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS", "host:port")
