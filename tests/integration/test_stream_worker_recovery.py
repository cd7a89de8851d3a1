"""The stream worker recovering from what kills leave: one chain of kills through one worker per
sink, real broker, real Spark, the real BigQuery client on the emulator.

Each worker start is a Spark driver (15-40 s), so one worker, on one checkpoint, dataset and
consumer group, is killed at every point in turn, each restart recovering from what the kill
before it left:

1. its checkpoint as a SIGKILL during the first offset-log write leaves it: the start removes
   the unfinished write and begins afresh; fault point ``after-merge`` kills it in that batch;
2. restarted with fault point ``after-commit``: the batch runs again and is killed once its
   offsets are committed to the consumer group, before Spark commits it;
3. restarted without one, on a backlog: SIGKILLed inside a batch that follows a finished one;
4. restarted on a checkpoint whose metadata Spark cannot read: the query fails to start, is
   tried again, and runs once the metadata is repaired; it then works off the backlog.

The recovered worker then serves the tests of a running worker with each sink: typed rows
exactly once, and poison quarantined with its reason while the stream goes on.

Each step is a module fixture that records what it left, and each test checks the steps it
names, so no test depends on another having run.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.envelope import OutgoingMessage
from shared.warehouse import relation_id
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack
from tests.harness.records import BITCOIN, HOSTILE, HUGE, KRAKEN, POINT, history, message
from tests.harness.sinks import SINKS
from tests.harness.stream_worker import AssetWorker, asset
from tests.harness.waiting import wait_for
from tests.harness.worker_chain import (
    Killed,
    Left,
    Recovery,
    failed_start_then_repaired,
    half_written_first_offset_log,
    killed_at_fault_point,
    killed_mid_batch,
    uncommitted_batches,
)

PORT = offset_port(18105)
FIRST_RECORDS = 100
"""The records of the chain's first batch, the one killed at both fault points."""
BACKLOG_POLLS = 15
"""Polls of 200 records produced before the mid-batch kill: 3,000 records, two batches of up to
``COINSTREAM_STREAM_MAX_RECORDS_PER_BATCH`` (2,000), the first large enough to load a staging
table, so the kill lands inside a batch with a load and a MERGE."""
TINY_PRICE = "0.000000000012345678"

# Each step of the chain is a fixture of the module's worker, set up by the first test that asks
# for it: a test of an early step runs no later one, and no test's setup holds more than one
# worker start unless it runs alone.


@pytest.fixture(scope="module", params=SINKS)
def chain_worker(request: pytest.FixtureRequest, local_stack: LocalStack) -> Iterator[AssetWorker]:
    """The worker every step starts again, with one sink; left running after the last step."""
    worker = AssetWorker(
        local_stack,
        {
            "COINSTREAM_STREAM_SINK": request.param,
            # Its own history topic too, for the poison test (no other test's points in it).
            "COINSTREAM_TOPIC_HISTORY": f"test.chain.history.{uuid.uuid4().hex[:8]}",
        },
        port=PORT,
    )
    yield worker
    if worker.process.process is not None:
        worker.process.stop()
    worker.drop_dataset()


@pytest.fixture(scope="module")
def half_written(chain_worker: AssetWorker) -> Path:
    """The checkpoint a kill during the first offset-log write left; the unfinished write."""
    return half_written_first_offset_log(Path(chain_worker.settings.checkpoint_location))


@pytest.fixture(scope="module")
def after_merge(chain_worker: AssetWorker, half_written: Path) -> Killed:
    worker = chain_worker
    worker.produce(worker.asset_messages([asset(number) for number in range(FIRST_RECORDS)]))
    return killed_at_fault_point(worker, "after-merge")


@pytest.fixture(scope="module")
def after_commit(chain_worker: AssetWorker, after_merge: Killed) -> Killed:
    return killed_at_fault_point(chain_worker, "after-commit")


@pytest.fixture(scope="module")
def mid_batch(chain_worker: AssetWorker, after_commit: Killed) -> int:
    """The exit status of the worker SIGKILLed inside a batch of the backlog."""
    worker = chain_worker
    polls = [worker.asset_messages([asset(n) for n in range(200)]) for _ in range(BACKLOG_POLLS)]
    worker.produce([message for poll in polls for message in poll])
    return killed_mid_batch(worker)


@pytest.fixture(scope="module")
def recovered(chain_worker: AssetWorker, mid_batch: int) -> Recovery:
    worker = chain_worker
    failed_start = failed_start_then_repaired(worker)
    worker.wait_caught_up(300, [worker.settings.topic_assets])
    checkpoint = Path(worker.settings.checkpoint_location)
    wait_for(
        lambda: uncommitted_batches(checkpoint) == set(),
        "Spark to commit every batch it planned",
        60,
    )
    left = Left.by(worker)
    assert worker.process.process is not None
    return Recovery(
        failed_start, left, worker.process.process.pid, Left.by(worker), worker.process.log_text()
    )


def test_a_kill_during_the_first_offset_log_write_is_a_fresh_start(
    half_written: Path, after_merge: Killed
) -> None:
    unfinished = half_written
    assert not unfinished.exists()
    assert not unfinished.with_name(f".{unfinished.name}.crc").exists()
    assert (
        "removed the unfinished checkpoint writes a killed worker left (never state): "
        f"file:{unfinished}"
    ) in after_merge.log
    assert "STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY" not in after_merge.log
    # Afresh: its first batch read every record from the earliest offset.
    assert after_merge.left.rows == FIRST_RECORDS


def test_a_kill_after_the_write_leaves_the_rows_in_and_no_offsets_committed(
    after_merge: Killed,
) -> None:
    """Killed exactly where asked: the rows are in the warehouse, Spark has not committed the
    batch, and the consumer group has no offsets yet."""
    killed = after_merge
    assert killed.exit_status == -signal.SIGKILL
    assert "fault point after-merge reached" in killed.log
    assert killed.left.rows == FIRST_RECORDS
    assert len(killed.left.uncommitted) == 1
    assert killed.left.offsets and all(c is None for _, c in killed.left.offsets.values())


def test_a_kill_after_the_offset_commit_leaves_the_batch_for_spark_to_run_again(
    after_merge: Killed, after_commit: Killed
) -> None:
    """The batch killed after its write ran again (adding nothing) and was killed once its
    offsets were committed to the group: Spark has still not committed it."""
    killed = after_commit
    assert killed.exit_status == -signal.SIGKILL
    assert "fault point after-commit reached" in killed.log
    assert killed.left.rows == FIRST_RECORDS and killed.left.duplicates == []
    assert killed.left.uncommitted == after_merge.left.uncommitted
    assert all(committed == end for end, committed in killed.left.offsets.values())


def test_a_query_that_cannot_start_is_retried_not_the_end_of_the_process(
    recovered: Recovery,
) -> None:
    failed = recovered.failed_start
    assert failed.alive and failed.health["state"] == "FAILED"
    assert "JsonParseException" in (failed.health.get("last_error") or "")
    assert "Traceback" not in failed.log
    # Once repaired, the same process ran the query and worked off the backlog.
    assert recovered.pid == failed.pid
    assert recovered.left.rows == FIRST_RECORDS + BACKLOG_POLLS * 200


def test_after_every_kill_each_record_is_in_the_warehouse_once(
    mid_batch: int, recovered: Recovery
) -> None:
    """The mid-batch SIGKILL and the failed start behind it, the restarts caught up: every
    record once, every planned batch committed, every end offset committed."""
    assert mid_batch == -signal.SIGKILL
    left = recovered.left
    assert left.rows == FIRST_RECORDS + BACKLOG_POLLS * 200
    assert left.duplicates == []
    assert left.uncommitted == set()
    assert all(committed == end for end, committed in left.offsets.values())
    # Nothing past the log end either: no more rows when read again.
    assert recovered.left_again.rows == left.rows
    # Each restart took the lock the killed holder's end freed, at once: no refusal.
    assert recovered.log.count("holding the lease on the checkpoint") == 4
    assert "coinstream:" not in recovered.log


def test_records_become_typed_renamed_rows_exactly_once(
    chain_worker: AssetWorker, recovered: Recovery
) -> None:
    """On the recovered worker, with each sink: asset records become typed, renamed rows."""
    worker = chain_worker
    rows_before, latest_before = worker.count("assets"), worker.count("assets_latest")
    records = [asset(number) for number in range(1000, 1050)]
    records[0] = asset(1000, price=TINY_PRICE)
    messages = worker.asset_messages(records)
    worker.produce(messages)
    wait_for(lambda: worker.count("assets") >= rows_before + 50, "50 asset rows", 90)

    # The same poll published again (an ingestor retry, a replay) adds nothing: the MERGE sink
    # stores it once; the append sink stores the copy and every view reads one row per record.
    worker.produce(messages)
    worker.wait_caught_up(60, [worker.settings.topic_assets])
    if worker.settings.stream_sink == "merge":
        assert worker.count("assets") == rows_before + 50
    else:
        assert worker.count("assets") == rows_before + 100
    assert worker.count("assets_latest") == latest_before + 50

    row = worker.query("SELECT * FROM `{d}.assets` WHERE id = 'coin-1000'")[0]
    assert row["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)
    assert row["market_cap_usd"] == pytest.approx(1904557171625.0952, rel=1e-15)
    assert row["rank"] == 1001
    assert row["max_supply"] is None and row["supply_ratio"] is None
    assert row["source_timestamp"] is not None and row["processing_timestamp"] is not None
    odd = worker.query("SELECT supply_ratio FROM `{d}.assets` WHERE id = 'coin-1001'")[0]
    assert odd["supply_ratio"] == pytest.approx(0.5)
    table = worker.client.get_table(relation_id(worker.settings, "assets"))
    assert table.time_partitioning.field == "processing_timestamp"
    assert table.clustering_fields == ["id"]


def test_poison_is_quarantined_with_its_reason_and_the_stream_goes_on(
    chain_worker: AssetWorker, recovered: Recovery
) -> None:
    """One message per hostile value, written straight to the record topics beside healthy
    records (anyone who can write a topic can write anything), with each sink: the healthy
    records land in their tables, each poison message in the quarantine with its reason, and the
    worker stays RUNNING and goes on to the next batch."""
    worker = chain_worker
    settings = worker.settings
    topics = {
        "a": settings.topic_assets,
        "e": settings.topic_exchanges,
        "h": settings.topic_history,
    }
    tables = ("assets", "exchanges", "asset_history")
    before = {table: worker.count(table) for table in tables}
    quarantined_before = worker.count("quarantine")
    error_before = worker.health()["last_error_at"]  # the chain's failed start, if anything
    healthy = [("a", message(BITCOIN)), ("e", message(KRAKEN)), ("h", history(POINT))]
    poison = [(topic, value) for topic, value, _ in HOSTILE]
    worker.produce(
        [
            OutgoingMessage(topics[topic], b"poison", value, "poison")
            for topic, value in [*healthy, *poison, ("a", HUGE)]
        ]
    )

    worker.wait_caught_up(180, list(topics.values()))
    assert {table: worker.count(table) - before[table] for table in tables} == {
        "assets": 1,
        "exchanges": 1,
        "asset_history": 1,
    }
    stored = worker.query(
        "SELECT reason, raw_value, LENGTH(raw_value) AS n FROM `{d}.quarantine` "
        "ORDER BY processing_timestamp, `offset`"
    )[quarantined_before:]
    assert len(stored) == len(HOSTILE) + 1, [row["reason"] for row in stored]
    unmatched = list(stored)
    for _, _, reason in HOSTILE:
        found = next((row for row in unmatched if row["reason"].startswith(reason)), None)
        assert found is not None, (reason, [row["reason"] for row in unmatched])
        unmatched.remove(found)
    [huge] = unmatched
    assert huge["n"] == 800 and huge["reason"].endswith(f"of {len(HUGE)} characters")
    not_utf8 = [row for row in stored if row["reason"].startswith("value is not valid UTF-8")]
    assert all("\ufffd" in row["raw_value"] for row in not_utf8) and len(not_utf8) == 2

    health = worker.health()
    assert (health["state"], health["status"]) == ("RUNNING", "ok")
    assert health["last_error_at"] == error_before  # no batch failed on the poison
    batches = health["batches"]
    assets = worker.count("assets")
    ethereum = message({**BITCOIN, "id": "ethereum", "symbol": "ETH"})
    worker.produce([OutgoingMessage(settings.topic_assets, b"poison", ethereum, "poison")])
    wait_for(lambda: worker.count("assets") == assets + 1, "the next batch's healthy record", 90)
    # The row is queryable once MERGEd; the batch counts once its offsets are committed too.
    wait_for(lambda: worker.health()["batches"] > batches, "the next batch to be counted", 30)
    health = worker.health()
    assert health["state"] == "RUNNING" and health["last_error_at"] == error_before
