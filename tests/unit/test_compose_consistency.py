"""compose.yaml, compose.live.yaml and the Dockerfiles agree with the code they deploy.

Read as YAML (anchors and merge keys resolved, variables not): every COINSTREAM_ variable the
files pass is a real setting; the ports inside the network are the settings' defaults, and so
are Prometheus' targets; every published port is on 127.0.0.1; Kafka keeps its log on its
volume; each stop grace period exceeds the service's shutdown budget; one service builds the
image; pins agree across files. `tests/integration/test_compose_checks.py` runs the tools.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from deploy.local.supervisor import local_processes
from services.stream_worker.worker import GRACEFUL_STOP_SECONDS
from shared.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
LIVE = yaml.safe_load((PROJECT_ROOT / "compose.live.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (PROJECT_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
PROMETHEUS = yaml.safe_load((PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
DEFAULTS = Settings(_env_file=None)

COINSTREAM_SERVICES = {
    name
    for name, service in SERVICES.items()
    if "services." in " ".join(service.get("command", []))
} | {"bigquery"}
SERVICE_PORTS = {
    "coincap-simulator": DEFAULTS.coincap_simulator_port,
    "asset-ingestor": DEFAULTS.asset_ingestor_port,
    "exchange-ingestor": DEFAULTS.exchange_ingestor_port,
    "stream-worker": DEFAULTS.stream_worker_port,
    "control": DEFAULTS.control_port,
    "dashboard": DEFAULTS.dashboard_port,
    "bigquery": DEFAULTS.bigquery_emulator_port,
    "kafka": DEFAULTS.kafka_listener[1],
    "prometheus": DEFAULTS.prometheus_port,
}
"""Each service's port inside the network: the setting's default, as `make run` uses it."""


def environment(service: dict[str, Any]) -> dict[str, Any]:
    return dict(service.get("environment") or {})


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, f"durations here are written as 45s or 2m, got {duration!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_compose_runs_the_processes_make_run_starts() -> None:
    """One container per process of `make run`, except its terminal watcher."""
    assert set(SERVICES) == set(local_processes(DEFAULTS)) - {"stack"}
    assert set(SERVICES) - COINSTREAM_SERVICES == {"kafka", "prometheus"}


@pytest.mark.parametrize("document", [COMPOSE, LIVE], ids=["compose.yaml", "compose.live.yaml"])
def test_every_coinstream_variable_passed_is_a_setting(document: dict[str, Any]) -> None:
    settings = {f"COINSTREAM_{name.upper()}" for name in Settings.model_fields}
    passed = {
        variable
        for service in document["services"].values()
        for variable in environment(service)
        if variable.startswith("COINSTREAM_")
    }
    assert passed, "no COINSTREAM_ variable found: did the file's layout change?"
    assert sorted(passed - settings) == []


def test_ports_inside_the_network_are_the_settings_defaults() -> None:
    for name in COINSTREAM_SERVICES:
        passed = environment(SERVICES[name])
        for variable, value in passed.items():
            if variable.endswith("_PORT") and value is not None:
                field = variable.removeprefix("COINSTREAM_").lower()
                assert int(value) == Settings.model_fields[field].default, (name, variable)
            if variable.endswith("_URL") and value:
                parts = urlsplit(value)
                assert parts.port == SERVICE_PORTS[str(parts.hostname)], (name, variable, value)
        assert passed["COINSTREAM_KAFKA_BOOTSTRAP_SERVERS"] == f"kafka:{SERVICE_PORTS['kafka']}"
        assert passed["COINSTREAM_COINCAP_SIMULATOR_HOST"] in SERVICES
        assert passed["COINSTREAM_STATE_DIR"] == "/data"
        assert passed["COINSTREAM_BIND_HOST"] == "0.0.0.0"


def test_health_checks_ask_each_service_on_its_own_port() -> None:
    for name, port in SERVICE_PORTS.items():
        test = " ".join(str(part) for part in SERVICES[name]["healthcheck"]["test"])
        assert f"{port}" in test, (name, test)
    for name in COINSTREAM_SERVICES:
        assert "deploy/docker/healthcheck.py" in SERVICES[name]["healthcheck"]["test"]


def test_prometheus_scrapes_each_service_at_its_compose_name_and_port() -> None:
    for job in PROMETHEUS["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, _, port = target.rpartition(":")
            if host == "localhost":
                continue
            assert host in SERVICES, (job["job_name"], target)
            assert int(port) == SERVICE_PORTS[host], (job["job_name"], target)


def test_every_published_port_is_on_loopback_and_its_target_is_the_service_port() -> None:
    published = 0
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert isinstance(port, dict), f"{name}: write ports in the long form"
            assert port["host_ip"] == "127.0.0.1", name
            assert re.fullmatch(r"\$\{[A-Z_]+_HOST_PORT:-\d+\}", port["published"]), port
            published += 1
    assert published == 6
    assert SERVICES["control"]["ports"][0]["target"] == DEFAULTS.control_port
    assert SERVICES["dashboard"]["ports"][0]["target"] == DEFAULTS.dashboard_port
    assert SERVICES["prometheus"]["ports"][0]["target"] == DEFAULTS.prometheus_port
    assert SERVICES["bigquery"]["ports"][0]["target"] == DEFAULTS.bigquery_emulator_port
    assert SERVICES["bigquery"]["ports"][1]["target"] == DEFAULTS.bigquery_emulator_grpc_port


def test_kafka_keeps_its_log_on_its_volume_and_offers_a_host_listener() -> None:
    kafka = SERVICES["kafka"]
    kafka_environment = environment(kafka)
    mounts = dict(volume.split(":", 1)[::-1] for volume in kafka["volumes"])
    assert mounts[kafka_environment["KAFKA_LOG_DIRS"]] == "kafka-data"
    assert "kafka-data" in COMPOSE["volumes"]
    assert kafka_environment["CLUSTER_ID"], "a fixed cluster id, so storage is formatted once"
    host_port = kafka["ports"][0]
    assert f"HOST://:{host_port['target']}" in kafka_environment["KAFKA_LISTENERS"]
    assert (
        f"HOST://127.0.0.1:{host_port['published']}"
        in kafka_environment["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_state_volumes_are_named_and_mounted_where_the_services_keep_state() -> None:
    assert SERVICES["bigquery"]["volumes"] == ["bigquery-data:/data"]
    assert SERVICES["stream-worker"]["volumes"] == ["worker-checkpoints:/data"]
    # Each ingestor's spool under its state dir, on a volume of its own (one spool per name).
    for name in ("asset-ingestor", "exchange-ingestor"):
        state_dir = Path(environment(SERVICES[name])["COINSTREAM_STATE_DIR"])
        assert SERVICES[name]["volumes"] == [f"{name}-spool:{state_dir}"], name
        spool_dir = Settings(_env_file=None, state_dir=state_dir).ingest_spool_directory
        assert spool_dir.is_relative_to(state_dir), name
        assert "COINSTREAM_INGEST_SPOOL_DIR" not in environment(SERVICES[name]), name
        assert f"{name}-spool" in COMPOSE["volumes"], name
    assert "prometheus-data:/prometheus" in SERVICES["prometheus"]["volumes"]
    assert "VOLUME" not in DOCKERFILE.split(), "VOLUME makes an anonymous volume at every up"


def test_stop_grace_periods_exceed_shutdown_budgets() -> None:
    flush = DEFAULTS.shutdown_flush_seconds
    for name in ("asset-ingestor", "exchange-ingestor"):
        assert seconds(SERVICES[name]["stop_grace_period"]) > flush, name
    assert seconds(SERVICES["stream-worker"]["stop_grace_period"]) > GRACEFUL_STOP_SECONDS
    for name, service in SERVICES.items():
        assert seconds(service["stop_grace_period"]) > 10, f"{name}: Docker's default is 10 s"


def test_every_service_is_health_gated_and_runs_under_an_init() -> None:
    for name, service in SERVICES.items():
        assert service.get("init") is True, name
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)


def test_one_service_builds_the_image_every_coinstream_service_runs() -> None:
    builders = [name for name, service in SERVICES.items() if "build" in service]
    assert builders == ["stream-worker"]
    images = {SERVICES[name]["image"] for name in COINSTREAM_SERVICES}
    assert images == {"${APP_IMAGE:-coinstream:local}"}


def test_the_local_stand_ins_run_only_in_their_profiles() -> None:
    assert SERVICES["coincap-simulator"]["profiles"] == ["simulator"]
    assert SERVICES["bigquery"]["profiles"] == ["emulator"]
    profiled = {name for name, service in SERVICES.items() if "profiles" in service}
    assert profiled == {"coincap-simulator", "bigquery"}
    for name, service in SERVICES.items():
        for dependency in ("coincap-simulator", "bigquery"):
            if dependency in (service.get("depends_on") or {}):
                assert service["depends_on"][dependency]["required"] is False, (name, dependency)


def test_only_the_control_service_gets_the_token() -> None:
    for name in COINSTREAM_SERVICES:
        token = environment(SERVICES[name])["COINSTREAM_CONTROL_API_TOKEN"]
        expected = "${COINSTREAM_CONTROL_API_TOKEN:-}" if name == "control" else ""
        assert token == expected, name


def test_live_mode_mounts_credentials_read_only_for_the_warehouse_users() -> None:
    for name, service in LIVE["services"].items():
        secret = service["secrets"][0]
        assert secret["source"] == "google-credentials"
        assert secret["mode"] == 0o444, "readable by the image's user, writable by none"
        target = f"/run/secrets/{secret['target']}"
        assert environment(service)["GOOGLE_APPLICATION_CREDENTIALS"] == target, name
    assert set(LIVE["services"]) == {"stream-worker", "control", "dashboard"}


def build_argument_defaults(dockerfile: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.MULTILINE))


def test_base_image_defaults_agree_between_compose_and_the_dockerfile() -> None:
    arguments = SERVICES["stream-worker"]["build"]["args"]
    defaults = build_argument_defaults(DOCKERFILE)
    for name, value in arguments.items():
        assert value == f"${{{name}:-{defaults[name]}}}", name
    for name, default in defaults.items():
        assert re.search(r":\d", default), f"{name}: pin a version, not {default!r}"


def test_pinned_versions_agree_across_files() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    uv_version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert uv_version and f"uv=={uv_version.group(1)}" in DOCKERFILE
    pom = (PROJECT_ROOT / "deploy" / "local" / "maven" / "kafka-broker" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", pom)
    assert kafka_version
    assert SERVICES["kafka"]["image"] == f"${{KAFKA_IMAGE:-apache/kafka:{kafka_version.group(1)}}}"
    dashboard_lock = (PROJECT_ROOT / "services" / "dashboard" / "package-lock.json").name
    assert dashboard_lock in DOCKERFILE


def test_the_runtime_image_exposes_every_service_port() -> None:
    exposed = re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.MULTILINE)
    assert exposed
    expected = {SERVICE_PORTS[name] for name in COINSTREAM_SERVICES}
    expected.add(DEFAULTS.bigquery_emulator_grpc_port)
    assert {int(port) for port in exposed.group(1).split()} == expected


def test_the_build_context_leaves_out_what_must_not_reach_an_image() -> None:
    rules = [
        line
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*", "an allow-list: everything is left out unless named"
    allowed = [rule.removeprefix("!") for rule in rules if rule.startswith("!")]
    for secret_or_state in (".env", ".git", ".venv", ".state", ".cache"):
        assert not any(rule.startswith(secret_or_state) for rule in allowed)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE, re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert any(source.startswith(rule.rstrip("/")) for rule in allowed), source


def test_the_placeholder_ca_bundle_holds_no_certificate() -> None:
    placeholder = Path(PROJECT_ROOT / "deploy" / "docker" / "no-extra-ca.pem").read_text()
    assert "BEGIN CERTIFICATE" not in placeholder
    assert COMPOSE["secrets"]["ca_bundle"]["file"] == (
        "${BUILD_CA_BUNDLE:-deploy/docker/no-extra-ca.pem}"
    )
