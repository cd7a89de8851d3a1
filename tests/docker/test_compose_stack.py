"""`make up` on a real Docker engine, as a user runs it, from substitute base images.

Every service becomes healthy; simulated data reaches the emulator's tables and the dashboard;
the control API pauses an ingestor; `make down` then `make up` keeps the rows and the Kafka
offsets, and the worker resumes from its checkpoint (no batch 0, no duplicate row); nothing
answers on an address other than loopback; `make down` removes the containers and the network.
The tests run in order on one stack (``docker_stack``), each building on the last.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from services.control.consumer_lag import measure_lag
from services.control.models import LagReport
from shared.schemas import ASSETS, EXCHANGES
from shared.settings import PROJECT_ROOT, Settings
from shared.warehouse.client import create_bigquery_client
from shared.warehouse.tables import table_id
from tests.docker.stack import FIGURES, HOST_PORTS, PROJECT_NAME, DockerStack

pytestmark = pytest.mark.timeout(1800)

SERVICES = {
    "kafka",
    "bigquery",
    "coincap-simulator",
    "asset-ingestor",
    "exchange-ingestor",
    "stream-worker",
    "control",
    "dashboard",
    "prometheus",
}
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 180) -> T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(2)


def host_settings(stack: DockerStack) -> Settings:
    """Settings of a client on the host: the published Kafka listener and emulator."""
    return Settings(
        _env_file=None,
        kafka_bootstrap_servers=f"127.0.0.1:{stack.environment['KAFKA_HOST_PORT']}",
        bigquery_emulator_url=stack.host_url("BIGQUERY_HOST_PORT"),
    )


def containers(stack: DockerStack) -> list[dict[str, Any]]:
    output = stack.compose("ps", "--all", "--format", "json", name="ps")
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def table_counts(stack: DockerStack) -> dict[str, tuple[int, int]]:
    """Rows and distinct (key, source_timestamp) pairs of each table the ingestors fill
    (``asset_history`` is filled only by a backfill, which this stack does not run)."""
    settings = host_settings(stack)
    client = create_bigquery_client(settings)
    counts = {}
    for schema in (ASSETS, EXCHANGES):
        key = f"CONCAT({schema.key_column}, '|', CAST(source_timestamp AS STRING))"
        query = (
            f"SELECT COUNT(*) AS n, COUNT(DISTINCT {key}) AS k FROM `{table_id(settings, schema)}`"
        )
        row = next(iter(client.query(query).result(timeout=30)))
        counts[schema.table] = (int(row["n"]), int(row["k"]))
    return counts


def kafka_offsets(stack: DockerStack) -> LagReport:
    settings = host_settings(stack)
    topics = [settings.topic_assets, settings.topic_exchanges]
    return asyncio.run(measure_lag(settings, settings.stream_consumer_group, topics))


def component(stack: DockerStack, name: str) -> dict[str, Any]:
    response = httpx.get(stack.host_url("CONTROL_HOST_PORT", f"/components/{name}"), timeout=10)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def test_every_service_is_healthy_and_published_on_loopback_only(docker_stack: DockerStack) -> None:
    running = containers(docker_stack)
    assert {container["Service"] for container in running} == SERVICES
    unhealthy = [
        c["Service"] for c in running if c["State"] != "running" or c["Health"] != "healthy"
    ]
    assert unhealthy == []
    published = [
        (c["Service"], p["URL"], p["PublishedPort"])
        for c in running
        for p in c["Publishers"]
        if p["PublishedPort"]
    ]
    assert sorted(port for _, _, port in published) == sorted(HOST_PORTS.values())
    assert {url for _, url, _ in published} == {"127.0.0.1"}


def test_simulated_data_reaches_the_emulator_and_the_dashboard(docker_stack: DockerStack) -> None:
    started = time.monotonic()

    def rows_in_both_tables() -> dict[str, tuple[int, int]] | None:
        counts = table_counts(docker_stack)
        return counts if all(rows for rows, _ in counts.values()) else None

    counts = eventually(rows_in_both_tables, "rows in both record tables of the emulator")
    FIGURES["healthy to first rows in the emulator"] = f"{time.monotonic() - started:.0f} s"
    assert all(rows == keys for rows, keys in counts.values()), counts

    status = httpx.get(docker_stack.host_url("DASHBOARD_HOST_PORT", "/api/status"), timeout=30)
    assert status.status_code == 200
    assert status.json()["simulated"] is True
    assert status.json()["has_data"] is True
    latest = httpx.get(
        docker_stack.host_url("DASHBOARD_HOST_PORT", "/api/assets/latest"), timeout=30
    )
    assert latest.status_code == 200
    assert len(latest.json()["assets"]) > 0
    page = httpx.get(docker_stack.host_url("DASHBOARD_HOST_PORT", "/"), timeout=30)
    assert page.status_code == 200


def test_prometheus_scrapes_every_service(docker_stack: DockerStack) -> None:
    def targets_up() -> dict[str, str] | None:
        answer = httpx.get(docker_stack.host_url("PROMETHEUS_HOST_PORT", "/api/v1/targets"))
        health = {t["labels"]["job"]: t["health"] for t in answer.json()["data"]["activeTargets"]}
        return health if health and set(health.values()) == {"up"} else None

    eventually(targets_up, "every Prometheus target up", timeout=60)


def test_the_control_api_pauses_an_ingestor(docker_stack: DockerStack) -> None:
    pause = docker_stack.host_url("CONTROL_HOST_PORT", "/components/asset-ingestor/pause")
    assert httpx.put(pause, timeout=10).status_code == 401
    headers = {"Authorization": f"Bearer {docker_stack.token}"}
    assert httpx.put(pause, headers=headers, timeout=10).status_code == 202
    eventually(
        lambda: (
            True
            if component(docker_stack, "asset-ingestor")["observed_state"] == "PAUSED"
            else None
        ),
        "the asset ingestor reporting PAUSED",
        timeout=60,
    )


def test_down_and_up_keep_rows_offsets_and_desired_state(docker_stack: DockerStack) -> None:
    # Let the worker catch up, so that every committed offset is also in the tables.
    eventually(
        lambda: True if kafka_offsets(docker_stack).lag_records == 0 else None,
        "the worker catching up with Kafka",
    )
    before_rows = table_counts(docker_stack)
    before_offsets = kafka_offsets(docker_stack)
    docker_stack.run(["make", "down"], "make-down-1", timeout=300)
    assert containers(docker_stack) == []
    docker_stack.run(["make", "up"], "make-up-2", timeout=900)
    FIGURES["make up again (images built, data kept) to healthy"] = (
        f"{docker_stack.timings['make-up-2']:.0f} s"
    )

    after_offsets = kafka_offsets(docker_stack)
    before = {(t.topic, p.partition): p for t in before_offsets.topics for p in t.partitions}
    for topic in after_offsets.topics:
        for partition in topic.partitions:
            earlier = before[(topic.topic, partition.partition)]
            assert partition.log_end_offset >= earlier.log_end_offset, (topic.topic, partition)
            assert (partition.committed_offset or 0) >= (earlier.committed_offset or 0)
    after_rows = table_counts(docker_stack)
    for table, (rows, _) in before_rows.items():
        assert after_rows[table][0] >= rows, (table, before_rows, after_rows)
    # The worker resumed from its checkpoint: a new batch, no batch 0 again, no duplicate row.
    eventually(
        lambda: (
            True if '"message": "batch ' in docker_stack.service_logs("stream-worker") else None
        ),
        "a batch of the restarted worker",
    )
    assert '"message": "batch 0:' not in docker_stack.service_logs("stream-worker")
    assert all(rows == keys for rows, keys in table_counts(docker_stack).values())
    # The paused ingestor stayed paused: its desired state lives in Kafka.
    assert component(docker_stack, "asset-ingestor")["desired_state"] == "PAUSED"
    assert component(docker_stack, "stream-worker")["observed_state"] == "RUNNING"


def non_loopback_addresses() -> list[str]:
    output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True).stdout
    return [address for address in output.split() if not address.startswith(("127.", "::1"))]


def answers(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        return probe.connect_ex((address, port)) == 0


def test_nothing_answers_on_a_non_loopback_address(docker_stack: DockerStack) -> None:
    addresses = non_loopback_addresses()
    assert addresses, "this machine has no non-loopback address to try"
    reachable = [
        (address, port)
        for address in addresses
        for port in HOST_PORTS.values()
        if answers(address, port)
    ]
    assert reachable == []
    assert all(answers("127.0.0.1", port) for port in HOST_PORTS.values())


def test_make_down_removes_containers_and_network(docker_stack: DockerStack) -> None:
    docker_stack.run(["make", "down"], "make-down-2", timeout=300)
    project = f"label=com.docker.compose.project={PROJECT_NAME}"
    for listing_command in (["container", "ls", "--all"], ["network", "ls"]):
        listing = subprocess.run(
            ["docker", *listing_command, "--quiet", "--filter", project],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert listing.split() == [], f"left by make down: {listing_command[0]}s {listing}"
    volumes = subprocess.run(
        ["docker", "volume", "ls", "--quiet", "--filter", project],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    declared = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())["volumes"]
    assert sorted(volumes) == sorted(f"{PROJECT_NAME}_{name}" for name in declared), (
        "make down keeps every data volume compose.yaml declares (the ingest spools included)"
    )


def test_live_mode_gives_the_services_the_google_credentials_read_only(
    docker_stack: DockerStack,
) -> None:
    """compose.live.yaml, as `make up` uses it with a GCP project: the credentials reach the
    service as a file its user reads but cannot change. (Real BigQuery is not reachable here.)"""
    credentials = '{"type": "authorized_user", "note": "not a real credential"}'
    environment = {
        **docker_stack.environment,
        "COMPOSE_PROJECT_NAME": f"{PROJECT_NAME}-live",
        "COINSTREAM_GCP_PROJECT": "a-project",
        "GOOGLE_CREDENTIALS_JSON": credentials,
    }
    probe = (
        "import json, os; path = os.environ['GOOGLE_APPLICATION_CREDENTIALS']; "
        "print(json.dumps({'text': open(path).read(), 'uid': os.getuid(), "
        "'writable': os.access(path, os.W_OK), 'project': os.environ['COINSTREAM_GCP_PROJECT']}))"
    )
    files = ["-f", "compose.yaml", "-f", "compose.live.yaml"]
    run_once = ["run", "--rm", "--no-deps", "-T", "dashboard"]
    result = subprocess.run(
        ["docker", "compose", *files, *run_once, "python", "-c", probe],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    subprocess.run(
        ["docker", "compose", *files, "down", "--remove-orphans"],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"text": credentials, "uid": 10001, "writable": False, "project": "a-project"}
