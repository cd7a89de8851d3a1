"""The control service against the pipeline as real processes: Kafka, the emulator, the
simulator, both ingestors, the control service itself and Prometheus.

One pipeline per module, on topics, a control topic, a consumer group and a dataset of its own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local.readiness import http_answers
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from shared.warehouse import create_bigquery_client, table_id
from tests.harness.broker import broker_offsets, read_topic, topic_end_total
from tests.harness.control_api import ControlApi
from tests.harness.environment import SIMULATOR_PORT, TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import (
    LocalStack,
    ManagedProcess,
    launch,
    settings_from,
    wait_until_answering,
)
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

SUFFIX = uuid.uuid4().hex[:8]
TOKEN = secrets.token_urlsafe(24)
CONTROL_PORT = offset_port(18110)
ASSET_PORT = offset_port(18111)
EXCHANGE_PORT = offset_port(18112)
WORKER_PORT = offset_port(18113)
PROMETHEUS_PORT = offset_port(19190)
LOG_DIR = TEST_STATE_DIR / "logs"
SIMULATOR = f"http://127.0.0.1:{SIMULATOR_PORT}"
POLL_INTERVAL = 1.0

ENVIRONMENT = {
    **TEST_ENVIRONMENT,
    "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
    "COINSTREAM_TOPIC_ASSETS": f"test.control.assets.{SUFFIX}",
    "COINSTREAM_TOPIC_EXCHANGES": f"test.control.exchanges.{SUFFIX}",
    "COINSTREAM_TOPIC_DEADLETTER": f"test.control.deadletter.{SUFFIX}",
    "COINSTREAM_TOPIC_CONTROL": f"test.control.state.{SUFFIX}",
    "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-control-worker-{SUFFIX}",
    "COINSTREAM_BIGQUERY_DATASET": f"control_{SUFFIX}",
    "COINSTREAM_CONTROL_PORT": str(CONTROL_PORT),
    "COINSTREAM_ASSET_INGESTOR_PORT": str(ASSET_PORT),
    "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(EXCHANGE_PORT),
    "COINSTREAM_STREAM_WORKER_PORT": str(WORKER_PORT),
    "COINSTREAM_PROMETHEUS_PORT": str(PROMETHEUS_PORT),
    "COINSTREAM_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
    "COINSTREAM_CONTROL_API_TOKEN": TOKEN,
    "COINSTREAM_CONTROL_REFRESH_SECONDS": "1",
    "COINSTREAM_CONTROL_FRESHNESS_REFRESH_SECONDS": "2",
    "COINSTREAM_STREAM_TRIGGER_SECONDS": "1",
    "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(TEST_STATE_DIR / f"checkpoint-control-{SUFFIX}"),
    "COINSTREAM_SPARK_DRIVER_MEMORY": "768m",
}
SETTINGS = settings_from(ENVIRONMENT)


PROCESSES = {
    # name: (module, port, health path, arguments)
    "prometheus": ("deploy.local.stack", PROMETHEUS_PORT, "/-/ready", ("prometheus",)),
    "asset-ingestor": ("services.ingestor", ASSET_PORT, "/healthz", ("assets",)),
    "exchange-ingestor": ("services.ingestor", EXCHANGE_PORT, "/healthz", ("exchanges",)),
    "control": ("services.control", CONTROL_PORT, "/healthz", ()),
    "stream-worker": ("services.stream_worker", WORKER_PORT, "/healthz", ()),
}


class Pipeline:
    """The module's processes, with what a test needs to restart one of them."""

    def __init__(self) -> None:
        self.processes: dict[str, ManagedProcess] = {}
        self.api = ControlApi(f"http://127.0.0.1:{CONTROL_PORT}", TOKEN)

    def start(self, *names: str) -> None:
        """Start the named processes together, then wait until each answers."""
        for name in names:
            module, _, _, arguments = PROCESSES[name]
            self.processes[name] = launch(
                f"{name}-{SUFFIX}", module, ENVIRONMENT, LOG_DIR, arguments
            )
        for name in names:
            _, port, path, _ = PROCESSES[name]
            wait_until_answering(self.processes[name], f"http://127.0.0.1:{port}{path}")

    def restart(self, name: str) -> None:
        self.processes[name].stop()
        self.start(name)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def logs(self) -> str:
        return "\n".join(process.log_text() for process in self.processes.values())


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack, simulator: str) -> Iterator[Pipeline]:
    httpx.delete(f"{SIMULATOR}/_simulator/faults").raise_for_status()
    running = Pipeline()
    try:
        running.start(*PROCESSES)
        yield running
    finally:
        running.stop()


def simulator_requests(endpoint: str) -> int:
    count: int = httpx.get(f"{SIMULATOR}/_simulator/stats").json()["requests"][endpoint]
    return count


def ingestor_health(port: int) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    return body


def paused_and_delivered(port: int) -> bool:
    """The ingestor on ``port`` is PAUSED and holds nothing Kafka has not acknowledged."""
    health = ingestor_health(port)
    return bool(health["state"] == "PAUSED" and health["buffered_records"] == 0)


# --- health and access -------------------------------------------------------------------


def test_healthz_and_readyz(pipeline: Pipeline) -> None:
    assert pipeline.api.json("/healthz") == {
        "status": "ok",
        "service": "control",
        "open_access": False,
    }
    ready = pipeline.api.json("/readyz")
    assert ready["status"] == "ready"
    assert ready["kafka"]["ok"] and ready["warehouse"]["ok"]


def test_readyz_names_the_dependency_that_does_not_answer(pipeline: Pipeline) -> None:
    cases = {
        # port: (what is broken, what /readyz must name, what it must not)
        offset_port(18114): (
            {"COINSTREAM_BIGQUERY_EMULATOR_URL": f"http://127.0.0.1:{offset_port(18199)}"},
            "the warehouse (BigQuery emulator at",
            "Kafka at",
        ),
        offset_port(18115): (
            {"COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{offset_port(18198)}"},
            "Kafka at",
            "the warehouse",
        ),
    }
    processes = {
        port: launch(
            f"control-broken-{port}-{SUFFIX}",
            "services.control",
            {**ENVIRONMENT, **broken, "COINSTREAM_CONTROL_PORT": str(port)},
            LOG_DIR,
        )
        for port, (broken, _, _) in cases.items()
    }
    try:
        for port, process in processes.items():
            wait_until_answering(process, f"http://127.0.0.1:{port}/healthz")
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
            _, named, not_named = cases[port]
            assert response.status_code == 503
            body = response.json()
            assert body["status"] == "unready"
            assert named in body["detail"] and not_named not in body["detail"]
            assert "start" in body["detail"]  # says what to do
    finally:
        for process in processes.values():
            process.stop()


def test_commands_need_the_right_token(pipeline: Pipeline) -> None:
    api = pipeline.api
    missing = api.command("exchange-ingestor", "pause", anonymous=True)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]

    wrong_token = "not-the-token-" + secrets.token_hex(4)
    wrong = api.command("exchange-ingestor", "pause", token=wrong_token)
    assert wrong.status_code == 403
    assert "wrong" in wrong.json()["detail"]
    assert wrong_token not in wrong.text

    # Neither request changed anything.
    assert api.component("exchange-ingestor")["desired_state"] == "RUNNING"

    # A token pasted into a body is not echoed back either.
    echoed = api.command("exchange-ingestor", "resume", json={"reason": 5, "token": TOKEN})
    assert echoed.status_code == 422
    assert TOKEN not in echoed.text


def test_bad_requests_get_4xx_that_say_what_to_do(pipeline: Pipeline) -> None:
    api = pipeline.api
    unknown = api.command("spark-thing", "pause")
    assert unknown.status_code == 404
    assert "asset-ingestor, exchange-ingestor, stream-worker" in unknown.json()["detail"]
    assert api.get("/components/spark-thing").status_code == 404

    malformed = api.command(
        "exchange-ingestor",
        "pause",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert "send no body, or a JSON object" in malformed.json()["detail"]

    extra = api.command("exchange-ingestor", "pause", json={"requested_by": "t", "colour": "red"})
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["location"] == ["body", "colour"]

    # 409: a stopped component cannot be paused or resumed, only started.
    stopped = api.command("stream-worker", "stop")
    assert stopped.status_code == 202, stopped.text
    try:
        refused = api.command("stream-worker", "pause")
        assert refused.status_code == 409
        assert "PUT /components/stream-worker/start" in refused.json()["detail"]
        assert api.command("stream-worker", "resume").status_code == 409
        assert api.command("stream-worker", "restart").status_code == 409
    finally:
        assert api.command("stream-worker", "start").status_code == 202


def test_the_control_topic_is_compacted_and_keyed_by_component(pipeline: Pipeline) -> None:
    async def configs_and_keys() -> tuple[dict[str, str], set[bytes | None]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=SETTINGS.kafka_bootstrap_servers)
        await admin.start()
        try:
            [response] = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, SETTINGS.topic_control)]
            )
        finally:
            await admin.close()
        entries = {entry[0]: entry[1] for entry in response.resources[0][4]}
        records = await read_topic(SETTINGS.kafka_bootstrap_servers, SETTINGS.topic_control)
        return entries, {record.key for record in records}

    assert pipeline.api.command("stream-worker", "pause").status_code == 202
    assert pipeline.api.command("stream-worker", "resume").status_code == 202
    configs, keys = asyncio.run(configs_and_keys())
    assert configs["cleanup.policy"] == "compact"
    assert b"stream-worker" in keys
    assert keys <= {b"asset-ingestor", b"exchange-ingestor", b"stream-worker"}


# --- pause, restart, resume -----------------------------------------------------------------


def test_a_paused_ingestor_stays_paused_across_restarts_then_resumes(pipeline: Pipeline) -> None:
    api = pipeline.api
    topic = SETTINGS.topic_assets
    wait_for(
        lambda: (
            api.component("asset-ingestor")["observed_state"] == "RUNNING"
            and api.component("asset-ingestor")["last_success_at"] is not None
        ),
        "for the asset ingestor to poll",
        60,
    )

    started = time.monotonic()
    accepted = api.command("asset-ingestor", "pause", json={"requested_by": "test", "reason": "x"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["desired_state"] == "PAUSED" and accepted.json()["changed"] is True
    assert api.component("asset-ingestor")["desired_state"] == "PAUSED"  # read-your-write
    wait_for(
        lambda: api.component("asset-ingestor")["observed_state"] == "PAUSED",
        "for the ingestor to pause",
        30,
    )
    pause_seconds = time.monotonic() - started
    print(f"\npause took effect in {pause_seconds:.2f} s")
    assert pause_seconds < 10
    again = api.command("asset-ingestor", "pause")
    assert again.status_code == 202 and again.json()["changed"] is False  # idempotent

    # Whatever the last poll fetched reaches Kafka; after that, nothing more.
    wait_for(lambda: ingestor_health(ASSET_PORT)["buffered_records"] == 0, "for delivery", 30)
    requests_before = simulator_requests("assets")
    messages_before = topic_end_total(SETTINGS, topic)
    exchange_messages_before = topic_end_total(SETTINGS, SETTINGS.topic_exchanges)
    window_end = time.monotonic() + 5 * POLL_INTERVAL
    while time.monotonic() < window_end:  # five poll intervals of watching
        assert simulator_requests("assets") == requests_before, "a paused ingestor polled"
        time.sleep(0.5)
    assert topic_end_total(SETTINGS, topic) == messages_before, "a paused ingestor produced"
    # The other ingestor was not paused and kept going.
    assert topic_end_total(SETTINGS, SETTINGS.topic_exchanges) > exchange_messages_before

    # Restart the ingestor and the control service: the pause is in Kafka, not in them.
    pipeline.restart("asset-ingestor")
    wait_for(
        lambda: ingestor_health(ASSET_PORT)["state"] == "PAUSED",
        "for the restarted ingestor to read its state",
        30,
    )
    pipeline.restart("control")
    after_restarts = api.component("asset-ingestor")
    assert after_restarts["desired_state"] == "PAUSED"
    assert after_restarts["observed_state"] == "PAUSED"
    assert after_restarts["requested_by"] == "test" and after_restarts["reason"] == "x"
    assert simulator_requests("assets") == requests_before, "the restarted ingestor polled"
    assert topic_end_total(SETTINGS, topic) == messages_before

    resumed_at = time.monotonic()
    assert api.command("asset-ingestor", "resume").status_code == 202
    wait_for(
        lambda: topic_end_total(SETTINGS, topic) > messages_before,
        "for records to flow again",
        30,
    )
    print(f"records flowed {time.monotonic() - resumed_at:.2f} s after resume")
    assert simulator_requests("assets") > requests_before
    wait_for(
        lambda: api.component("asset-ingestor")["observed_state"] == "RUNNING",
        "for the ingestor to report RUNNING",
        10,
    )


def test_stop_releases_kafka_and_start_brings_it_back(pipeline: Pipeline) -> None:
    api = pipeline.api
    assert api.command("exchange-ingestor", "stop").status_code == 202
    wait_for(
        lambda: (
            ingestor_health(EXCHANGE_PORT)["state"] == "STOPPED"
            and not ingestor_health(EXCHANGE_PORT)["kafka_connected"]
        ),
        "for the ingestor to stop and close its producer",
        30,
    )
    status = api.component("exchange-ingestor")
    assert status["observed_state"] == "STOPPED" and status["in_sync"]
    assert ingestor_health(EXCHANGE_PORT)["status"] == "ok"  # stopped on purpose
    polls = simulator_requests("exchanges")
    assert api.command("exchange-ingestor", "start").status_code == 202
    wait_for(lambda: simulator_requests("exchanges") > polls, "for polls to start again", 30)
    generation = api.component("exchange-ingestor")["restart_generation"]
    restarted = api.command("exchange-ingestor", "restart")
    assert restarted.status_code == 202
    assert restarted.json()["restart_generation"] == generation + 1
    wait_for(
        lambda: (
            "restarting (requested by client 127.0.0.1)"
            in pipeline.processes["exchange-ingestor"].log_text()
        ),
        "for the ingestor to restart",
        30,
    )


# --- lag and freshness ----------------------------------------------------------------------


def lag_by_partition(report: dict[str, Any]) -> dict[tuple[str, int], tuple[int, int | None]]:
    return {
        (topic["topic"], partition["partition"]): (
            partition["log_end_offset"],
            partition["committed_offset"],
        )
        for topic in report["topics"]
        for partition in topic["partitions"]
    }


def test_lag_grows_while_the_worker_is_stopped_and_returns_to_zero(pipeline: Pipeline) -> None:
    api = pipeline.api
    topics = [SETTINGS.topic_assets, SETTINGS.topic_exchanges]
    wait_for(
        lambda: ingestor_health(WORKER_PORT)["state"] == "RUNNING", "for the worker to run", 120
    )
    try:
        wait_for(lambda: api.json("/lag")["lag_records"] < 1000, "for the worker to catch up", 120)
        stopped = api.command("stream-worker", "stop")
        assert stopped.status_code == 202, stopped.text
        # The worker finishes the batch it was in when told to stop, and commits it; after
        # that it is STOPPED and the committed offsets stay put. The lag is measured from
        # there, at the broker (a /lag answer may be up to two seconds old).
        wait_for(
            lambda: ingestor_health(WORKER_PORT)["state"] == "STOPPED", "the worker to stop", 60
        )
        at_stop = asyncio.run(broker_offsets(SETTINGS, SETTINGS.stream_consumer_group, topics))
        stopped_lag = sum(end - (committed or 0) for end, committed in at_stop.values())
        wait_for(
            lambda: api.json("/lag")["lag_records"] > stopped_lag + 500,
            "for lag to grow while the worker is stopped",
            30,
        )
        # Freeze the topics to compare with the broker exactly.
        for ingestor in ("asset-ingestor", "exchange-ingestor"):
            assert api.command(ingestor, "pause").status_code == 202
        for port in (ASSET_PORT, EXCHANGE_PORT):
            wait_for(
                functools.partial(paused_and_delivered, port), "for the ingestors to pause", 30
            )
        broker = asyncio.run(broker_offsets(SETTINGS, SETTINGS.stream_consumer_group, topics))
        # An answer may be up to COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS old: the first one
        # measured after the freeze must equal the broker's offsets exactly.
        wait_for(
            lambda: lag_by_partition(api.json("/lag")) == broker, "/lag to match the broker", 30
        )
        report = api.json("/lag")
        assert lag_by_partition(report) == broker
        assert report["lag_records"] == sum(
            end - (committed or 0) for end, committed in broker.values()
        )
        assert report["lag_records"] > 500
        lagging = [
            partition
            for topic in report["topics"]
            for partition in topic["partitions"]
            if partition["lag_records"] > 0
        ]
        assert lagging and all(partition["lag_seconds"] > 0 for partition in lagging)

        started = time.monotonic()
        assert api.command("stream-worker", "start").status_code == 202
        wait_for(lambda: api.json("/lag")["lag_records"] == 0, "for lag to return to 0", 60)
        print(f"\nlag back to 0 {time.monotonic() - started:.2f} s after start")
        broker = asyncio.run(broker_offsets(SETTINGS, SETTINGS.stream_consumer_group, topics))
        assert all(committed == end for end, committed in broker.values())
        assert all(
            topic["lag_seconds"] == 0 for topic in api.json("/lag")["topics"] if topic["exists"]
        )
        assert ingestor_health(WORKER_PORT)["state"] == "RUNNING"
    finally:
        for ingestor in ("asset-ingestor", "exchange-ingestor"):
            api.command(ingestor, "resume")


def test_freshness_is_seconds_since_the_newest_processing_timestamp(pipeline: Pipeline) -> None:
    """The real worker writes rows; /freshness must agree with the warehouse's own newest row."""
    api = pipeline.api
    client = create_bigquery_client(SETTINGS)

    def newest_age(schema: TableSchema) -> float:
        [row] = client.query(
            f"SELECT MAX(processing_timestamp) AS newest FROM `{table_id(SETTINGS, schema)}`"
        ).result()
        newest: datetime = row["newest"]
        return (datetime.now(UTC) - newest).total_seconds()

    wait_for(
        lambda: all(table["exists"] for table in api.json("/freshness")["tables"]),
        "for the worker to create and fill the tables",
        120,
    )
    wait_for(
        lambda: all(
            (table["seconds_since_newest"] or 1e9) < 60
            for table in api.json("/freshness")["tables"]
        ),
        "for fresh rows in both tables",
        120,
    )
    report = {table["table"]: table for table in api.json("/freshness")["tables"]}
    assert set(report) == {"assets", "exchanges"}
    for schema in (ASSETS, EXCHANGES):
        # The service refreshes every 2 s; the worker writes every second or so.
        assert abs(report[schema.table]["seconds_since_newest"] - newest_age(schema)) < 15


# --- Prometheus -----------------------------------------------------------------------------


def prometheus_query(query: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query", params={"query": query}, timeout=10
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def scraped(job: str) -> bool:
    """Prometheus' last scrape of ``job`` succeeded."""
    return [sample["value"][1] for sample in prometheus_query(f'up{{job="{job}"}}')] == ["1"]


def test_prometheus_scrapes_every_service_and_has_the_lag_series(pipeline: Pipeline) -> None:
    jobs = ["coinstream-control", "coinstream-asset-ingestor", "coinstream-exchange-ingestor"]
    if http_answers(f"http://127.0.0.1:{WORKER_PORT}/healthz"):
        jobs.append("coinstream-stream-worker")
    for job in jobs:
        wait_for(functools.partial(scraped, job), f"for Prometheus to scrape {job}", 60)
    group = SETTINGS.stream_consumer_group
    lag_series: list[dict[str, Any]] = []

    def lag_series_present() -> bool:
        lag_series[:] = prometheus_query(f'coinstream_consumer_lag_records{{group="{group}"}}')
        return len(lag_series) > 0

    wait_for(lag_series_present, "for the lag series in Prometheus", 60)
    assert {series["metric"]["topic"] for series in lag_series} == {
        SETTINGS.topic_assets,
        SETTINGS.topic_exchanges,
    }
    assert {series["metric"]["job"] for series in lag_series} == {"coinstream-control"}
    interval = prometheus_query('coinstream_poll_interval_seconds{job="coinstream-asset-ingestor"}')
    assert [series["value"][1] for series in interval] == ["1"], "the ingestor is not scraped"
    states = prometheus_query('coinstream_component_state{component="asset-ingestor"} == 1')
    assert [series["metric"]["state"] for series in states] in (["RUNNING"], ["PAUSED"])
    rules = httpx.get(f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/rules", timeout=10).json()
    alert_names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert "CoinstreamConsumerLagHigh" in alert_names


# --- secrets --------------------------------------------------------------------------------


def test_the_token_appears_in_no_log_and_no_answer(pipeline: Pipeline) -> None:
    components = pipeline.api.get("/components").text
    metrics = pipeline.api.get("/metrics").text
    assert TOKEN not in components and TOKEN not in metrics
    assert "coinstream_component_state" in metrics
    assert TOKEN not in pipeline.logs()
    assert TOKEN not in json.dumps(pipeline.api.json("/openapi.json"))
