"""What both sinks guarantee alike, with the real clients on the emulator: a micro-batch that
the next run of a killed worker runs again adds nothing, whether the kill came after the whole
batch or between two of its tables. Each sink's own behaviour: test_merge_sink.py,
test_storage_write_sink.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import bigquery

from shared.schemas import ASSET_HISTORY, ASSETS
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, ensure_warehouse, table_id
from tests.harness.sinks import SINKS, SparkCheckpointFolder, arrow_rows, build_sink


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    """A dataset of its own, with the tables made."""
    own = stack_settings.model_copy(update={"bigquery_dataset": f"rerun_{uuid.uuid4().hex[:8]}"})
    ensure_warehouse(create_bigquery_client(own), own)
    return own


def asset_row(asset_id: str, at: datetime) -> dict[str, Any]:
    return {
        "id": asset_id,
        "rank": 1,
        "price_usd": 1.5,
        "source_timestamp": at,
        "fetched_at": at,
        "poll_id": uuid.uuid4().hex,
        "processing_timestamp": at,
    }


def count(client: bigquery.Client, settings: Settings, asset_id: str) -> int:
    rows = client.query(
        f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}` WHERE id = @id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", asset_id)]
        ),
    ).result()
    return int(next(iter(rows))["n"])


@pytest.mark.parametrize("kind", SINKS)
def test_a_batch_run_again_by_the_next_run_adds_nothing(
    settings: Settings, tmp_path: Path, kind: str
) -> None:
    """Killed after the write, before Spark committed the batch: the next run runs it again."""
    checkpoint = SparkCheckpointFolder(tmp_path / "checkpoint")
    checkpoint.plan(7)
    now = datetime.now(UTC)
    rows = arrow_rows(ASSETS, [asset_row(f"rerun-{n}", now) for n in range(5)])
    assert build_sink(kind, settings, checkpoint).write(ASSETS, rows, "killed", 7) == 5
    build_sink(kind, settings, checkpoint).write(ASSETS, rows, "restarted", 7)
    client = create_bigquery_client(settings)
    assert [count(client, settings, f"rerun-{n}") for n in range(5)] == [1] * 5


@pytest.mark.parametrize("kind", SINKS)
def test_a_kill_between_two_tables_writes_is_completed_by_the_rerun(
    settings: Settings, tmp_path: Path, kind: str
) -> None:
    checkpoint = SparkCheckpointFolder(tmp_path / "checkpoint")
    checkpoint.plan(3)
    now = datetime.now(UTC)
    assets = arrow_rows(ASSETS, [asset_row(f"both-{n}", now) for n in range(4)])
    point = {
        "id": "bitcoin",
        "interval": "h1",
        "time": now - timedelta(days=2),
        "source_timestamp": now,
        "fetched_at": now,
        "processing_timestamp": now,
    }
    history = arrow_rows(ASSET_HISTORY, [point])
    build_sink(kind, settings, checkpoint).write(ASSETS, assets, "killed", 3)
    # ... killed here: the batch's history point was never written.
    rerun = build_sink(kind, settings, checkpoint)
    rerun.write(ASSETS, assets, "restarted", 3)
    rerun.write(ASSET_HISTORY, history, "restarted", 3)
    client = create_bigquery_client(settings)
    assert [count(client, settings, f"both-{n}") for n in range(4)] == [1] * 4
    rows = client.query(f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSET_HISTORY)}`").result()
    assert next(iter(rows))["n"] == 1
