"""The stream worker recovering from what kills and outages leave: a half-written checkpoint,
a query that will not start, records retention deleted before they were read, and a SIGKILL at
each named fault point. Real broker, real Spark, the real BigQuery client on the emulator."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from shared.settings import Settings
from tests.harness.broker import broker_offsets
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack
from tests.harness.sinks import SINKS
from tests.harness.stream_worker import AssetWorker, asset
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

PORT = offset_port(18105)


def end_offsets(worker: AssetWorker) -> dict[tuple[str, int], tuple[int, int | None]]:
    """Per asset partition: log end offset and the worker's committed offset."""
    settings = worker.settings
    return asyncio.run(
        broker_offsets(settings, settings.stream_consumer_group, [settings.topic_assets])
    )


def duplicates(worker: AssetWorker) -> list[dict[str, object]]:
    return worker.query(
        "SELECT id, source_timestamp, COUNT(*) AS n FROM `{d}.assets` "
        "GROUP BY id, source_timestamp HAVING COUNT(*) > 1"
    )


def test_a_kill_during_the_first_offset_log_write_is_a_fresh_start(
    local_stack: LocalStack,
) -> None:
    """What a SIGKILL while Spark writes ``offsets/0`` leaves: its query id, and a zero-byte
    temporary file with its checksum where the first offset-log entry was to be renamed."""
    worker = AssetWorker(local_stack, port=PORT)
    checkpoint = Path(worker.settings.checkpoint_location)
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}) + "\n")
    unfinished = f".0.{uuid.uuid4()}.tmp"
    (checkpoint / "offsets" / unfinished).write_bytes(b"")
    (checkpoint / "offsets" / f".{unfinished}.crc").write_bytes(b"")

    worker.produce(worker.asset_messages([asset(number) for number in range(20)]))
    worker.start()
    try:
        worker.wait_caught_up(120, [worker.settings.topic_assets])
        assert worker.count("assets") == 20
        assert not (checkpoint / "offsets" / unfinished).exists()
        assert not (checkpoint / "offsets" / f".{unfinished}.crc").exists()
        log = worker.process.log_text()
        assert (
            "removed the unfinished checkpoint writes a killed worker left (never state): "
            f"file:{checkpoint}/offsets/{unfinished}"
        ) in log
        assert "STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY" not in log
    finally:
        worker.process.stop()


def test_a_query_that_cannot_start_is_retried_not_the_end_of_the_process(
    local_stack: LocalStack,
) -> None:
    """A checkpoint whose metadata Spark cannot read makes ``start()`` raise, every time."""
    worker = AssetWorker(local_stack, port=PORT)
    checkpoint = Path(worker.settings.checkpoint_location)
    checkpoint.mkdir(parents=True)
    (checkpoint / "metadata").write_text("not json{")
    worker.process.start()

    def failed_but_alive() -> bool:
        assert worker.process.is_running(), worker.process.log_tail(20)
        return worker.health().get("state") == "FAILED"

    try:
        wait_for(
            lambda: failed_but_alive() and "did not start" in worker.process.log_text(),
            "the worker to report the failed start",
            180,
        )
        assert worker.process.is_running()
        assert "JsonParseException" in (worker.health().get("last_error") or "")
        assert "Traceback" not in worker.process.log_text()
        # Someone repairs the checkpoint; the next try, after the backoff, runs the query.
        (checkpoint / "metadata").unlink()
        wait_for(lambda: worker.health().get("state") == "RUNNING", "the query to start", 180)
        worker.produce(worker.asset_messages([asset(number) for number in range(5)]))
        worker.wait_caught_up(90, [worker.settings.topic_assets])
        assert worker.count("assets") == 5
    finally:
        worker.process.stop()


async def delete_records_before(settings: Settings, offsets: dict[tuple[str, int], int]) -> None:
    """What retention does to the oldest segments: records before ``offsets`` are gone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records(
            {
                TopicPartition(topic, partition): RecordsToDelete(offset)
                for (topic, partition), offset in offsets.items()
            }
        )
    finally:
        await admin.close()


def test_records_retention_deleted_before_they_were_read_are_counted_not_fatal(
    local_stack: LocalStack,
) -> None:
    worker = AssetWorker(local_stack, port=PORT)
    topic = worker.settings.topic_assets
    worker.produce(worker.asset_messages([asset(number) for number in range(30)]))
    worker.start()
    try:
        worker.wait_caught_up(120, [topic])
        read = {key: end for key, (end, _) in end_offsets(worker).items()}
        worker.process.stop()

        # While the worker is down, 60 records arrive and retention deletes all but the
        # newest of each partition before the worker is back.
        worker.produce(worker.asset_messages([asset(number) for number in range(60)]))
        ends = {key: end for key, (end, _) in end_offsets(worker).items()}
        asyncio.run(delete_records_before(worker.settings, {k: e - 1 for k, e in ends.items()}))
        lost = {key: ends[key] - 1 - read[key] for key in ends if ends[key] - 1 > read[key]}
        assert sum(lost.values()) > 0

        worker.produce(worker.asset_messages([asset(number) for number in range(10)]))
        worker.start()
        worker.wait_caught_up(120, [topic])

        kept = sum(1 for key in ends if ends[key] > read[key])
        assert worker.count("assets") == 30 + kept + 10
        reasons = {
            row["reason"]
            for row in worker.query("SELECT reason FROM `{d}.quarantine` WHERE raw_value IS NULL")
        }
        assert reasons == {
            f"offsets {read[key]}-{ends[key] - 2} of {topic}/{key[1]} lost to retention "
            "before they were read"
            for key in lost
        }
        metrics = httpx.get(f"http://127.0.0.1:{PORT}/metrics", timeout=5).text
        counted = re.search(
            rf'coinstream_stream_offsets_lost_total{{topic="{re.escape(topic)}"}} (\S+)', metrics
        )
        assert counted is not None and float(counted.group(1)) == sum(lost.values())
        log = worker.process.log_text()
        assert log.count("lost to retention before they were read") == len(lost)
        assert duplicates(worker) == []
    finally:
        worker.process.stop()


def uncommitted_batches(checkpoint: Path) -> set[str]:
    """Batches Spark planned (``offsets/N``) but did not commit (no ``commits/N``)."""
    planned = {path.name for path in (checkpoint / "offsets").iterdir() if path.name.isdigit()}
    committed = {path.name for path in (checkpoint / "commits").iterdir() if path.name.isdigit()}
    return planned - committed


@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("point", ["after-merge", "after-commit"])
def test_a_kill_at_a_fault_point_leaves_each_record_once(
    local_stack: LocalStack, point: str, sink: str
) -> None:
    worker = AssetWorker(
        local_stack,
        {"COINSTREAM_WORKER_FAULT_POINT": point, "COINSTREAM_STREAM_SINK": sink},
        port=PORT,
    )
    topic = worker.settings.topic_assets
    worker.produce(worker.asset_messages([asset(number) for number in range(100)]))
    worker.process.start()
    assert worker.process.process is not None
    assert worker.process.process.wait(timeout=240) == -signal.SIGKILL
    assert f"fault point {point} reached" in worker.process.log_text()

    # Killed exactly where asked: the rows are in the warehouse, Spark has not committed
    # the batch, and the consumer group has its offsets only after the commit.
    assert worker.count("assets") == 100
    assert len(uncommitted_batches(Path(worker.settings.checkpoint_location))) == 1
    offsets = end_offsets(worker)
    if point == "after-merge":
        assert all(committed is None for _, committed in offsets.values())
    else:
        assert all(committed == end for end, committed in offsets.values())

    del worker.process.environment["COINSTREAM_WORKER_FAULT_POINT"]
    worker.start()
    try:
        worker.produce(worker.asset_messages([asset(number) for number in range(10)]))
        wait_for(
            lambda: worker.caught_up([topic]) and worker.health().get("batches", 0) >= 1,
            "the worker to run the batch again and read on",
            120,
        )
        wait_for(lambda: worker.count("assets") == 110, "the 10 new records", 60)
        assert duplicates(worker) == []
        wait_for(
            lambda: uncommitted_batches(Path(worker.settings.checkpoint_location)) == set(),
            "Spark to commit every batch it planned",
            60,
        )
        # Nothing past the log end either: every end offset is committed, and no more rows.
        assert all(committed == end for end, committed in end_offsets(worker).values())
        assert worker.count("assets") == 110
    finally:
        worker.process.stop()
