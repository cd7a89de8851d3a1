"""The stream worker end to end: real broker, real Spark, the real BigQuery client on the emulator.

The module runs one worker process on topics and a dataset of its own. Records are produced in
the ingestors' own message format (``shared.envelope``), so what the worker reads is what
it reads in production.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import ensure_topics, pipeline_topics
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, dataset_id, relation_id
from tests.conftest import (
    TEST_ENVIRONMENT,
    TEST_STATE_DIR,
    LocalStack,
    ManagedProcess,
    offset_port,
    settings_from,
    wait_for,
)
from tests.integration.control_support import broker_offsets

pytestmark = pytest.mark.integration

WORKER_PORT = offset_port(18103)
TINY_PRICE = "0.000000000012345678"
HUGE_MARKET_CAP = "1904557171625.0952172577833640"


class Worker:
    """The worker process and what it reads from and writes to."""

    def __init__(self, local_stack: LocalStack) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.environment = {
            **TEST_ENVIRONMENT,
            "COINSTREAM_TOPIC_ASSETS": f"test.worker.assets.{suffix}",
            "COINSTREAM_TOPIC_EXCHANGES": f"test.worker.exchanges.{suffix}",
            "COINSTREAM_BIGQUERY_DATASET": f"worker_{suffix}",
            "COINSTREAM_STREAM_CHECKPOINT_LOCATION": str(TEST_STATE_DIR / f"checkpoint-{suffix}"),
            "COINSTREAM_STREAM_WORKER_PORT": str(WORKER_PORT),
            "COINSTREAM_STREAM_TRIGGER_SECONDS": "1",
            "COINSTREAM_STREAM_CONSUMER_GROUP": f"test-worker-{suffix}",
            "COINSTREAM_STREAM_MAX_RECORDS_PER_BATCH": "2000",
            "COINSTREAM_SPARK_DRIVER_MEMORY": "768m",
        }
        self.settings: Settings = settings_from(self.environment)
        self.process = ManagedProcess(
            f"stream-worker-{suffix}",
            [sys.executable, "-m", "services.stream_worker"],
            self.environment,
            TEST_STATE_DIR / "logs",
        )
        self.client = create_bigquery_client(self.settings)
        self._next_source_ms = 1_795_000_000_000

    def start(self) -> None:
        self.process.start()
        wait_for(lambda: self.health().get("state") == "RUNNING", "the worker to run", 120)

    def health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(
                f"http://127.0.0.1:{WORKER_PORT}/healthz", timeout=2
            ).json()
        except httpx.HTTPError:
            return {}
        return body

    def query(self, sql: str) -> list[dict[str, Any]]:
        dataset = dataset_id(self.settings)
        return [dict(row) for row in self.client.query(sql.format(d=dataset)).result()]

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
    try:
        offsets = asyncio.run(
            broker_offsets(
                worker.settings,
                worker.settings.stream_consumer_group,
                [worker.settings.topic_assets],
            )
        )
    except KafkaError:  # e.g. the group coordinator is still being elected
        return False
    return bool(offsets) and all(committed == end for end, committed in offsets.values())


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


def test_records_become_typed_renamed_rows_exactly_once(worker: Worker) -> None:
    records = [asset(number) for number in range(50)]
    records[0] = asset(0, price=TINY_PRICE)
    messages = worker.asset_messages(records)
    worker.produce(messages)
    wait_for(lambda: worker.count("assets") >= 50, "50 asset rows", 90)

    # The same poll published again (an ingestor retry, a replay) adds nothing.
    worker.produce(messages)
    wait_for(lambda: caught_up(worker), "the worker to process the copies", 60)
    assert worker.count("assets") == 50

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


def test_sigkill_mid_batch_and_restart_leaves_each_record_once(worker: Worker) -> None:
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
