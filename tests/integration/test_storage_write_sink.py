"""The Storage Write API sink on the emulator's gRPC Storage Write API, with the real clients:
nothing visible before the commit, a rerun that finds its batch and adds nothing, a check only
where a rerun can be, and a record published twice stored twice but read once."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from services.dashboard import entities
from services.dashboard.queries import TimeRange, latest, series
from services.stream_worker import batch_phases
from services.stream_worker.batch_marker import batch_marker
from services.stream_worker.sinks.storage_write import StorageWriteSink, marked_rows
from services.stream_worker.sinks.storage_write_client import create_write_client
from shared.schemas import ASSET_HISTORY, ASSETS, TableSchema
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, ensure_views, ensure_warehouse, table_id
from tests.harness.sinks import SparkCheckpointFolder, arrow_rows


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    """A dataset of its own, with the tables made."""
    own = stack_settings.model_copy(update={"bigquery_dataset": f"append_{uuid.uuid4().hex[:8]}"})
    ensure_warehouse(create_bigquery_client(own), own)
    return own


@pytest.fixture
def checkpoint(tmp_path: Path) -> SparkCheckpointFolder:
    return SparkCheckpointFolder(tmp_path / "checkpoint")


def new_sink(settings: Settings, checkpoint: SparkCheckpointFolder) -> StorageWriteSink:
    """The sink a (re)started worker builds on ``checkpoint``."""
    return StorageWriteSink(
        settings,
        create_bigquery_client(settings),
        create_write_client(settings),
        checkpoint.batches(),
    )


def assets(count: int, source: datetime | None = None) -> pa.Table:
    now = datetime.now(UTC)
    return arrow_rows(
        ASSETS,
        [
            {
                "id": f"coin-{number}",
                "rank": number + 1,
                "price_usd": 1.5,
                "source_timestamp": source or now,
                "fetched_at": source or now,
                "poll_id": uuid.uuid4().hex,
                "processing_timestamp": now,
            }
            for number in range(count)
        ],
    )


def stored(settings: Settings, table: TableSchema, column: str = "COUNT(*)") -> list[Any]:
    client = create_bigquery_client(settings)
    rows = client.query(f"SELECT {column} AS v FROM `{table_id(settings, table)}`").result()
    return [row["v"] for row in rows]


def count(settings: Settings, table: TableSchema) -> int:
    return int(stored(settings, table)[0])


def test_rows_are_invisible_until_the_commit_and_all_visible_after(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    sink = new_sink(settings, checkpoint)
    sink.max_request_bytes = 200  # several append requests, at consecutive offsets
    rows = marked_rows(ASSETS, assets(40), "query:0")
    stream = sink.append(ASSETS, rows)
    assert count(settings, ASSETS) == 0
    sink.commit(ASSETS, stream)
    assert count(settings, ASSETS) == 40
    assert stored(settings, ASSETS, "DISTINCT stream_batch") == ["query:0"]


def test_a_rerun_of_a_batch_appended_but_not_committed_writes_it(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """Killed between append and commit: the stream is never committed, the rerun writes."""
    checkpoint.plan(0)
    rows = assets(5)
    query_id = checkpoint.batches().query_id()
    new_sink(settings, checkpoint).append(ASSETS, marked_rows(ASSETS, rows, f"{query_id}:0"))
    new_sink(settings, checkpoint).write(ASSETS, rows, "rerun", 0)
    assert count(settings, ASSETS) == 5


def test_a_rerun_over_the_same_offsets_is_found_and_adds_nothing(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    checkpoint.plan(0, end=40)
    rows = assets(5)
    new_sink(settings, checkpoint).write(ASSETS, rows, "first", 0)
    new_sink(settings, checkpoint).write(ASSETS, rows, "rerun", 0)
    assert count(settings, ASSETS) == 5


def test_a_restored_checkpoint_s_batch_over_other_offsets_is_written_not_skipped(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """A checkpoint restored from an older copy plans batch 0 again, over the offsets that
    arrived since: same query id, same batch id, other records. They must be stored."""
    checkpoint.plan(0, end=40)
    new_sink(settings, checkpoint).write(ASSETS, assets(5), "before-restore", 0)
    checkpoint.plan(0, end=90)  # the restored copy's batch 0 reads further
    new_sink(settings, checkpoint).write(ASSETS, assets(5), "after-restore", 0)
    assert count(settings, ASSETS) == 10
    markers = stored(settings, ASSETS, "DISTINCT stream_batch")
    assert len(markers) == 2 and {marker.rsplit(":", 1)[0] for marker in markers} == {
        f"{checkpoint.batches().query_id()}:0"
    }


def test_rows_marked_before_markers_named_their_range_never_make_a_batch_a_rerun(
    settings: Settings, checkpoint: SparkCheckpointFolder, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows stored under ``<query id>:<batch id>`` cannot say which offsets they hold: the
    batch is written (at worst a copy the views read once), never skipped, and the log says so."""
    checkpoint.plan(0, end=40)
    query_id = checkpoint.batches().query_id()
    old = new_sink(settings, checkpoint)
    old.commit(ASSETS, old.append(ASSETS, marked_rows(ASSETS, assets(5), f"{query_id}:0")))
    with caplog.at_level(logging.WARNING, logger="services.stream_worker.sinks.storage_write"):
        new_sink(settings, checkpoint).write(ASSETS, assets(5), "upgraded", 0)
    assert count(settings, ASSETS) == 10
    assert f"assets holds rows marked {query_id}:0, written before markers named" in caplog.text


def test_only_the_first_batch_of_a_run_is_checked(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """Only a run's first batch can be a rerun; later ones append without reading anything."""
    sink = new_sink(settings, checkpoint)
    checked = []
    for batch_id in (4, 5, 6):
        checkpoint.plan(batch_id)
        with batch_phases.recording() as phases:
            sink.write(ASSETS, assets(3), "run", batch_id)
        checked.append("assets.rerun_check" in phases.seconds)
    assert checked == [True, False, False]
    assert count(settings, ASSETS) == 9


def test_a_new_checkpoint_s_batch_is_not_taken_for_an_old_one(
    settings: Settings, tmp_path: Path
) -> None:
    """A reset checkpoint numbers its batches from 0 again, under a new query id."""
    old, new = SparkCheckpointFolder(tmp_path / "old"), SparkCheckpointFolder(tmp_path / "new")
    old.plan(0)
    new.plan(0)
    new_sink(settings, old).write(ASSETS, assets(3), "old-run", 0)
    new_sink(settings, new).write(ASSETS, assets(3), "new-run", 0)
    assert count(settings, ASSETS) == 6
    markers = sorted(stored(settings, ASSETS, "DISTINCT stream_batch"))
    expected = [
        batch_marker(folder.batches().query_id(), 0, folder.batches().offset_range(0))
        for folder in (old, new)
    ]
    assert markers == sorted(expected)


def test_a_rerun_check_on_a_table_partitioned_by_its_rows_reads_their_days(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """``asset_history`` is partitioned on the point's own ``time``: the rerun of a backfill of
    a month ago looks exactly there, and finds it."""
    point_time = datetime.now(UTC) - timedelta(days=30)
    now = datetime.now(UTC)
    rows = arrow_rows(
        ASSET_HISTORY,
        [
            {
                "id": "bitcoin",
                "interval": "d1",
                "time": point_time + timedelta(days=day),
                "price_usd": 2.5,
                "source_timestamp": now,
                "fetched_at": now,
                "poll_id": "p",
                "processing_timestamp": now,
            }
            for day in range(3)
        ],
    )
    sink = new_sink(settings, checkpoint)
    since, until = sink.check_range(ASSET_HISTORY, rows, 0)
    assert (since, until) == (point_time, point_time + timedelta(days=2))
    checkpoint.plan(0)
    sink.write(ASSET_HISTORY, rows, "first", 0)
    new_sink(settings, checkpoint).write(ASSET_HISTORY, rows, "rerun", 0)
    assert count(settings, ASSET_HISTORY) == 3


def test_a_record_published_twice_is_stored_twice_and_read_once(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """An ingestor's resend reaches Kafka at another offset, so another batch: the append sink
    stores both copies, and every view and dashboard query reads one."""
    ensure_views(create_bigquery_client(settings), settings)
    source = datetime.now(UTC) - timedelta(seconds=30)
    sink = new_sink(settings, checkpoint)
    for batch_id in (0, 1):
        checkpoint.plan(batch_id)
        sink.write(ASSETS, assets(3, source=source), "run", batch_id)
    assert count(settings, ASSETS) == 6

    client = create_bigquery_client(settings)
    for view in ("assets_latest", "assets_hourly"):
        rows = client.query(
            f"SELECT id FROM `{settings.warehouse_project}.{settings.bigquery_dataset}.{view}`"
        ).result()
        assert sorted(row["id"] for row in rows) == ["coin-0", "coin-1", "coin-2"], view
    window = TimeRange(source - timedelta(minutes=5), datetime.now(UTC))
    newest = latest(client, settings, entities.ASSETS, window, limit=10)
    assert [row.model_dump()["id"] for row in newest] == ["coin-0", "coin-1", "coin-2"]
    points = series(client, settings, entities.ASSETS, ["coin-0"], window, points=100)
    assert len(points) == 1 and len(points[0].model_dump()["t"]) == 1


def test_a_stored_row_keeps_every_column_the_merge_sink_would(
    settings: Settings, checkpoint: SparkCheckpointFolder
) -> None:
    """Tiny prices and huge market caps survive Arrow as they survive Parquet."""
    now = datetime.now(UTC)
    rows = arrow_rows(
        ASSETS,
        [
            {
                "id": "tiny",
                "rank": 1,
                "price_usd": 1.2345678e-11,
                "market_cap_usd": 1904557171625.0952,
                "source_timestamp": now,
                "fetched_at": now,
                "poll_id": "p",
                "processing_timestamp": now,
            }
        ],
    )
    checkpoint.plan(0)
    new_sink(settings, checkpoint).write(ASSETS, rows, "run", 0)
    row = next(
        iter(
            create_bigquery_client(settings)
            .query(f"SELECT * FROM `{table_id(settings, ASSETS)}`")
            .result()
        )
    )
    assert row["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)
    assert row["market_cap_usd"] == pytest.approx(1904557171625.0952, rel=1e-15)
    assert row["processing_timestamp"] == now
    assert isinstance(row["stream_batch"], str)
