"""The stream worker end to end: real broker, real Spark, the real BigQuery client on the emulator.

The module runs one worker process on topics and a dataset of its own, which every test that
only sends records and watches shares (each sends what it checks); a test that stops or
reconfigures a worker starts its own. Records are produced in the ingestors' own message format
(``shared.envelope``), so what the worker reads is what it reads in production. The kills, and
the exactly-once test with each sink, are in ``test_stream_worker_recovery``.
"""

from __future__ import annotations

import asyncio
import copy
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from google.cloud import bigquery

from services.stream_worker.checkpoint import is_unfinished_write
from shared.schemas import ASSETS
from shared.settings import Settings
from shared.warehouse import (
    dataset_id,
    ensure_views,
    ensure_warehouse,
    table_definition,
)
from tests.harness.cloud_storage import cloud_storage_emulator, new_bucket
from tests.harness.environment import offset_port
from tests.harness.processes import LocalStack
from tests.harness.stream_worker import AssetWorker, asset
from tests.harness.waiting import wait_for

SECOND_WORKER_PORT = offset_port(18104)
THIRD_WORKER_PORT = offset_port(18106)
"""For the tests that start a worker of their own while the module's one runs."""
CLOUD_STORAGE_PORT = offset_port(18443)


def caught_up(worker: AssetWorker) -> bool:
    """True when the worker has processed (and committed) everything in the asset topic."""
    return worker.caught_up([worker.settings.topic_assets])


@pytest.fixture(scope="module")
def worker(local_stack: LocalStack) -> Iterator[AssetWorker]:
    test_worker = AssetWorker(local_stack)
    test_worker.start()
    yield test_worker
    test_worker.process.stop()


def test_malformed_messages_are_quarantined_and_the_stream_goes_on(worker: AssetWorker) -> None:
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


def test_processed_offsets_are_committed_to_the_consumer_group(worker: AssetWorker) -> None:
    worker.produce(worker.asset_messages([asset(number) for number in range(600, 610)]))
    wait_for(lambda: caught_up(worker), "committed offsets to reach the log end", 60)


def checkpoint_files(location: str) -> dict[str, tuple[int, int]]:
    """Every file of a local checkpoint, with its size and modification time."""
    root = Path(location)
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in root.rglob("*")
        if path.is_file()
    }


def refusal(worker: AssetWorker) -> list[str]:
    """The lines a worker that ended printed for its operator."""
    return [
        line for line in worker.process.log_text().splitlines() if line.startswith("coinstream:")
    ]


def test_a_second_worker_on_a_checkpoint_in_use_refuses_at_once_and_the_first_goes_on(
    local_stack: LocalStack, worker: AssetWorker
) -> None:
    """A rolling deploy or a ``--scale`` starts a second worker on the first's checkpoint: it
    ends with one line naming the holder, before it touches the checkpoint (an unfinished write
    of the first's stays), and the first goes on processing each record once."""
    worker.produce(worker.asset_messages([asset(number) for number in range(300, 310)]))
    wait_for(lambda: caught_up(worker), "the first worker to process 10 records", 90)
    location = worker.settings.checkpoint_location
    # Spark commits a batch to its checkpoint after the batch function returned.
    wait_for(
        lambda: (
            (Path(location) / "commits" / str(worker.health()["last_batch_id"])).is_file()
            and not any(is_unfinished_write(Path(name).name) for name in checkpoint_files(location))
        ),
        "Spark to commit the batch",
        30,
    )
    in_flight = Path(location) / "offsets" / f".999.{uuid.uuid4()}.tmp"
    in_flight.write_text("the first worker's write in flight")
    before = checkpoint_files(location)
    rows_before = worker.count("assets")

    second = AssetWorker(
        local_stack, {"COINSTREAM_STREAM_CHECKPOINT_LOCATION": location}, port=SECOND_WORKER_PORT
    )
    started = time.monotonic()
    second.process.start()
    try:
        assert second.process.exit_status(60) == 3, second.process.log_tail(40)
    finally:
        second.process.stop()
    refused_in = time.monotonic() - started
    assert worker.process.process is not None
    holder = re.escape(f"host {socket.gethostname()} (pid {worker.process.process.pid})")
    lines = refusal(second)
    assert len(lines) == 1 and re.fullmatch(
        rf"coinstream: the checkpoint {re.escape(location)} is in use by the stream worker on "
        rf"{holder} since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ; stop that worker first \(two "
        r"workers on one checkpoint would both write its batches\): the lock on "
        rf"{re.escape(location)}/lease is freed as soon as that process ends, however it ends",
        lines[0],
    ), lines
    assert refused_in < 30, f"the second worker took {refused_in:.1f} s to refuse"
    assert checkpoint_files(location) == before

    worker.produce(worker.asset_messages([asset(number) for number in range(310, 320)]))
    wait_for(lambda: caught_up(worker), "the first worker to go on", 90)
    assert worker.count("assets") == rows_before + 10
    assert worker.process.is_running()
    in_flight.unlink()


def test_each_batch_reports_where_its_time_went(worker: AssetWorker) -> None:
    """The per-batch profile, from any running worker: phases in /metrics and the log line."""
    worker.produce(worker.asset_messages([asset(number) for number in range(650, 660)]))
    wait_for(lambda: caught_up(worker), "the worker to process 10 records", 60)
    metrics = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=5).text
    for phase in ("spark.collect.batch", "assets.merge", "offset_commit"):
        assert f'coinstream_stream_batch_phase_seconds_count{{phase="{phase}"}}' in metrics
    batch_lines = [line for line in worker.process.log_text().splitlines() if '"phases"' in line]
    assert batch_lines and '"assets.merge"' in "".join(batch_lines)


def test_views_show_the_newest_row_per_asset(worker: AssetWorker) -> None:
    for _ in range(2):  # two polls: two rows per asset, the newer one the latest
        worker.produce(worker.asset_messages([asset(number) for number in range(700, 705)]))
    wait_for(lambda: caught_up(worker), "the worker to process two polls", 60)
    latest = worker.query("SELECT id, COUNT(*) OVER () AS n FROM `{d}.assets_latest` LIMIT 1")
    distinct = worker.query("SELECT COUNT(DISTINCT id) AS n FROM `{d}.assets`")[0]["n"]
    assert latest[0]["n"] == distinct
    series = worker.query(
        "SELECT ts, price_usd FROM `{d}.assets_timeseries` WHERE id = 'coin-700' ORDER BY ts"
    )
    assert len(series) == 2
    assert all(isinstance(row["price_usd"], float) for row in series)


def test_a_warehouse_unlike_the_code_stops_the_worker_with_one_line(
    local_stack: LocalStack,
) -> None:
    """Where Terraform owns the tables, a difference ends the worker at once, exit status 2."""
    worker = AssetWorker(
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
    with cloud_storage_emulator(CLOUD_STORAGE_PORT) as url:
        yield url


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


def lost_to_retention_while_down(
    worker: AssetWorker, read: dict[tuple[str, int], int]
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """While the worker is down, 60 records arrive and retention deletes all but the newest of
    each partition before the worker is back. Returns the end offsets after the 60, and how many
    records each partition lost unread."""
    worker.produce(worker.asset_messages([asset(number) for number in range(60)]))
    ends = {key: end for key, (end, _) in worker.asset_offsets().items()}
    asyncio.run(delete_records_before(worker.settings, {k: e - 1 for k, e in ends.items()}))
    lost = {key: ends[key] - 1 - read[key] for key in ends if ends[key] - 1 > read[key]}
    assert sum(lost.values()) > 0
    return ends, lost


def assert_losses_counted(
    worker: AssetWorker,
    read: dict[tuple[str, int], int],
    ends: dict[tuple[str, int], int],
    lost: dict[tuple[str, int], int],
) -> None:
    """Each lost range a quarantine row, a log line, and counted in the metric; no duplicate."""
    topic = worker.settings.topic_assets
    reasons = {
        row["reason"]
        for row in worker.query("SELECT reason FROM `{d}.quarantine` WHERE raw_value IS NULL")
    }
    assert reasons == {
        f"offsets {read[key]}-{ends[key] - 2} of {topic}/{key[1]} lost to retention "
        "before they were read"
        for key in lost
    }
    metrics = httpx.get(f"http://127.0.0.1:{worker.port}/metrics", timeout=5).text
    counted = re.search(
        rf'coinstream_stream_offsets_lost_total{{topic="{re.escape(topic)}"}} (\S+)', metrics
    )
    assert counted is not None and float(counted.group(1)) == sum(lost.values())
    log = worker.process.log_text()
    assert log.count("lost to retention before they were read") == len(lost)
    assert worker.duplicate_assets() == []


def test_a_checkpoint_in_cloud_storage_carries_the_stream_across_a_restart(
    local_stack: LocalStack, cloud_storage: str
) -> None:
    """As on GCP: a gs:// checkpoint, and tables and views made beforehand (by Terraform there).
    While the worker is down, retention deletes records it had not read: the restarted worker
    counts them, and goes on."""
    bucket = new_bucket(cloud_storage)
    worker = AssetWorker(
        local_stack,
        {
            "COINSTREAM_STREAM_CHECKPOINT_LOCATION": f"gs://{bucket}/stream-worker",
            "COINSTREAM_GCS_EMULATOR_URL": cloud_storage,
            "COINSTREAM_WAREHOUSE_SCHEMA_OWNER": "terraform",
            # Renewed every 7 s, so the hand-broken lease below is noticed within that; far
            # enough from expiry that a late renewal on a loaded machine does not let the
            # second worker take it over.
            "COINSTREAM_STREAM_CHECKPOINT_LEASE_SECONDS": "21",
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
        read = {key: end for key, (end, _) in worker.asset_offsets().items()}

        def stored_names() -> set[str]:
            listing = httpx.get(
                f"{cloud_storage}/storage/v1/b/{bucket}/o", params={"prefix": "stream-worker/"}
            ).json()
            return {item["name"] for item in listing.get("items", [])}

        # Spark commits the batch to its checkpoint after the batch function returned.
        expected = {"stream-worker/metadata", f"stream-worker/commits/{last_batch}"}
        wait_for(lambda: expected <= stored_names(), "the checkpoint in Cloud Storage", 30)
        assert "stream-worker/lease" in stored_names()

        # A second worker on the same gs:// checkpoint refuses, and says how to take over.
        second = AssetWorker(
            local_stack,
            {
                "COINSTREAM_STREAM_CHECKPOINT_LOCATION": f"gs://{bucket}/stream-worker",
                "COINSTREAM_GCS_EMULATOR_URL": cloud_storage,
            },
            port=THIRD_WORKER_PORT,
        )
        second.process.start()
        assert second.process.exit_status(60) == 3, second.process.log_tail(40)
        (line,) = refusal(second)
        assert f"is in use by the stream worker on host {socket.gethostname()}" in line
        assert f"or break it now with `gcloud storage rm gs://{bucket}/stream-worker/lease`" in line

        worker.process.stop()
        # Released on a clean stop: the next worker need not wait for it to expire.
        assert "stream-worker/lease" not in stored_names()
        ends, lost = lost_to_retention_while_down(worker, read)
        worker.produce(worker.asset_messages([asset(number) for number in range(20, 25)]))
        worker.start()
        wait_for(lambda: caught_up(worker), "the worker to process what is left", 90)
        # The newest of the 60 in each partition that had any, and the 5 after them.
        kept = sum(1 for key in ends if ends[key] > read[key])
        assert worker.count("assets") == 20 + kept + 5
        # Batch ids go on from the checkpoint: it was read back from Cloud Storage, not begun anew.
        assert worker.health()["last_batch_id"] > last_batch
        assert_losses_counted(worker, read, ends, lost)

        # The lease broken by hand (`gcloud storage rm`): the worker stops rather than go on.
        httpx.delete(
            f"{cloud_storage}/storage/v1/b/{bucket}/o/stream-worker%2Flease"
        ).raise_for_status()
        assert worker.process.exit_status(60) == 3, worker.process.log_tail(40)
        assert refusal(worker) == [
            f"coinstream: the stream worker lost its lease on gs://{bucket}/stream-worker and "
            f"stopped its query: the lease gs://{bucket}/stream-worker/lease was removed while "
            "this worker held it"
        ]
    finally:
        worker.process.stop()
