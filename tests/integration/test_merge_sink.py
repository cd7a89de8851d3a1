"""The MERGE sink against the real BigQuery client and the emulator: staging tables that
cannot collide and that its ``prepare`` drops once stale, a MERGE that finds copies however
old, a timed-out job cancelled before the batch runs again, a steady batch in one call.

What both sinks guarantee alike (a batch run again adds nothing) is in test_sink_reruns.py."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa
import pytest
from google.cloud import bigquery

from services.stream_worker.sinks.merge import (
    INLINE_MERGE_MAX_ROWS,
    STAGING_PREFIX,
    BigQueryJobAbandoned,
    MergeSink,
)
from shared.schemas import ASSET_HISTORY, ASSETS
from shared.settings import Settings
from shared.warehouse import create_bigquery_client, dataset_id, ensure_warehouse, table_id
from tests.harness.sinks import arrow_rows


def asset_row(asset_id: str, source: datetime, processed: datetime) -> dict[str, Any]:
    return {
        "id": asset_id,
        "rank": 1,
        "price_usd": 1.5,
        "source_timestamp": source,
        "fetched_at": source,
        "poll_id": uuid.uuid4().hex,
        "processing_timestamp": processed,
    }


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    """A dataset of its own, with the tables made."""
    own = stack_settings.model_copy(update={"bigquery_dataset": f"sink_{uuid.uuid4().hex[:8]}"})
    ensure_warehouse(create_bigquery_client(own), own)
    return own


def count(client: bigquery.Client, settings: Settings, asset_id: str) -> int:
    rows = client.query(
        f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}` WHERE id = @id",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("id", "STRING", asset_id)]
        ),
    ).result()
    return int(next(iter(rows))["n"])


def test_two_runs_writing_the_same_batch_id_do_not_share_a_staging_table(
    settings: Settings,
) -> None:
    """Two workers on one dataset, or a worker on a reset checkpoint, both at batch 5."""
    client = create_bigquery_client(settings)
    first, second = MergeSink(settings, client), MergeSink(settings, client)
    now = datetime.now(UTC)
    staged = first.stage(ASSETS, arrow_rows(ASSETS, [asset_row("one", now, now)]), "run1", 5)
    second.write(ASSETS, arrow_rows(ASSETS, [asset_row("two", now, now)]), "run2", 5)
    first.merge(staged)  # the first run's MERGE still finds its own rows
    assert count(client, settings, "one") == 1
    assert count(client, settings, "two") == 1
    assert first.staging_id(ASSETS, "run1", 5) != second.staging_id(ASSETS, "run2", 5)


def test_a_staging_table_a_crash_left_is_dropped_once_stale(settings: Settings) -> None:
    client = create_bigquery_client(settings)
    sink = MergeSink(settings, client)
    now = datetime.now(UTC)
    staged = sink.stage(ASSETS, arrow_rows(ASSETS, [asset_row("left", now, now)]), "crashed", 3)
    name = staged.staging.rsplit(".", 1)[1]

    def tables() -> list[str]:
        return [item.table_id for item in client.list_tables(dataset_id(settings))]

    MergeSink(settings, client).prepare()  # what a restarted worker does: younger than a day
    assert name in tables()
    assert sink.drop_stale_staging_tables() == []  # younger than a day: kept
    assert sink.drop_stale_staging_tables(older_than=timedelta(0)) == [name]
    assert name not in tables() and "assets" in tables()


def test_a_replay_of_records_older_than_the_horizon_adds_nothing(settings: Settings) -> None:
    """Ten days ago the worker stored a snapshot; a replay of its topic today brings it again."""
    client = create_bigquery_client(settings)
    sink = MergeSink(settings, client)
    source = datetime.now(UTC) - timedelta(days=10)
    first = asset_row("old-coin", source, source + timedelta(seconds=3))
    sink.write(ASSETS, arrow_rows(ASSETS, [first]), "before", 0)
    replayed = {**first, "processing_timestamp": datetime.now(UTC)}
    sink.write(ASSETS, arrow_rows(ASSETS, [replayed]), "replay", 0)
    assert settings.stream_dedup_horizon_hours == 48
    assert count(client, settings, "old-coin") == 1


def test_history_points_older_than_the_horizon_are_found_in_their_own_partition(
    settings: Settings,
) -> None:
    """A table partitioned on a key column (asset_history on ``time``): a point of a month ago
    fetched again today is found where it lies, however far back that is."""
    client = create_bigquery_client(settings)
    sink = MergeSink(settings, client)
    point_time = datetime.now(UTC) - timedelta(days=30)
    fetched = datetime.now(UTC)
    point = {
        "id": "bitcoin",
        "interval": "d1",
        "time": point_time,
        "price_usd": 2.5,
        "source_timestamp": fetched,
        "fetched_at": fetched,
        "poll_id": "first",
        "processing_timestamp": fetched,
    }
    sink.write(ASSET_HISTORY, arrow_rows(ASSET_HISTORY, [point]), "first", 0)
    again = {**point, "poll_id": "second", "source_timestamp": fetched + timedelta(hours=1)}
    sink.write(ASSET_HISTORY, arrow_rows(ASSET_HISTORY, [again]), "second", 0)
    rows = client.query(f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSET_HISTORY)}`").result(
        timeout=15
    )
    assert next(iter(rows))["n"] == 1


class SlowJobProxy(http.server.ThreadingHTTPServer):
    """Forwards to the emulator, but plays a job that is still running until it is cancelled.

    The emulator runs every job before it answers the insert, so a job that outlives its
    timeout cannot happen there; this proxy answers the insert with state RUNNING and holds
    every poll of a job until a cancel arrives, then lets the emulator answer. It records each
    request as (method, path).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: list[tuple[str, str]] = []
        self.cancelled = threading.Event()
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: SlowJobProxy

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _forward(self) -> None:
        proxy = self.server
        proxy.requests.append((self.command, self.path))
        polls_a_job = self.command == "GET" and ("/jobs/" in self.path or "/queries/" in self.path)
        if polls_a_job and not proxy.cancelled.wait(60):
            return
        if self.command == "POST" and self.path.split("?")[0].endswith("/cancel"):
            proxy.cancelled.set()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        answer = httpx.request(
            self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=30
        )
        content = answer.content
        inserts_a_job = self.command == "POST" and self.path.split("?")[0].endswith("/jobs")
        if inserts_a_job and not proxy.cancelled.is_set():
            content = content.replace(b'"state":"DONE"', b'"state":"RUNNING"').replace(
                b'"state": "DONE"', b'"state": "RUNNING"'
            )
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PATCH = do_DELETE = _forward


@pytest.fixture
def slow_job_proxy(stack_settings: Settings) -> Iterator[SlowJobProxy]:
    proxy = SlowJobProxy(stack_settings.bigquery_emulator_url)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.cancelled.set()
    proxy.shutdown()


def test_a_merge_that_does_not_finish_in_time_is_cancelled_and_waited_for(
    settings: Settings, slow_job_proxy: SlowJobProxy
) -> None:
    staged = MergeSink(settings, create_bigquery_client(settings)).stage(
        ASSETS,
        arrow_rows(ASSETS, [asset_row("slow", datetime.now(UTC), datetime.now(UTC))]),
        "r",
        1,
    )
    through_proxy = settings.model_copy(
        update={"bigquery_emulator_url": slow_job_proxy.url, "bigquery_timeout_seconds": 1.0}
    )
    sink = MergeSink(through_proxy, create_bigquery_client(through_proxy))
    with pytest.raises(BigQueryJobAbandoned, match=r"did not finish in 4 s; it was cancelled"):
        sink.merge(staged)
    requests = slow_job_proxy.requests
    cancels = [
        i for i, (method, path) in enumerate(requests) if path.split("?")[0].endswith("/cancel")
    ]
    assert len(cancels) == 1, requests
    # After the cancel the sink asked for the job until it had ended, then gave up on it.
    assert any(method == "GET" and "/jobs/" in path for method, path in requests[cancels[0] + 1 :])


def asset_rows(count: int, source: datetime) -> pa.Table:
    rows = [asset_row(f"coin-{n}", source, source) for n in range(count)]
    rows[0]["price_usd"] = 1.2345678e-11
    return arrow_rows(ASSETS, rows)


def test_a_steady_batch_is_one_merge_call_with_no_staging_table(
    settings: Settings, slow_job_proxy: SlowJobProxy
) -> None:
    """165 rows, as every steady micro-batch has: no create, load or drop of a staging table."""
    slow_job_proxy.cancelled.set()  # nothing held: the proxy only records what the sink asks
    through_proxy = settings.model_copy(update={"bigquery_emulator_url": slow_job_proxy.url})
    sink = MergeSink(through_proxy, create_bigquery_client(through_proxy))
    assert sink.write(ASSETS, asset_rows(165, datetime.now(UTC)), "steady", 7) == 165
    requests = slow_job_proxy.requests
    assert not [path for _, path in requests if "staging" in path or "upload" in path], requests
    inserted = [path for method, path in requests if method == "POST"]
    assert len(inserted) == 1, requests  # the MERGE's query job, and nothing else written
    client = create_bigquery_client(settings)
    assert count(client, settings, "coin-164") == 1
    stored = client.query(
        f"SELECT price_usd FROM `{table_id(settings, ASSETS)}` WHERE id = 'coin-0'"
    ).result()
    assert next(iter(stored))["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)


def test_a_rerun_of_an_inline_merged_batch_adds_nothing(settings: Settings) -> None:
    client = create_bigquery_client(settings)
    sink = MergeSink(settings, client)
    rows = asset_rows(165, datetime.now(UTC))
    sink.write(ASSETS, rows, "first", 3)
    sink.write(ASSETS, rows, "rerun", 3)
    total = client.query(f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}`").result()
    assert next(iter(total))["n"] == 165


def test_a_batch_over_the_inline_limit_is_staged_merged_once_and_its_table_dropped(
    settings: Settings,
) -> None:
    client = create_bigquery_client(settings)
    sink = MergeSink(settings, client)
    rows = asset_rows(INLINE_MERGE_MAX_ROWS + 1, datetime.now(UTC))
    assert sink.write(ASSETS, rows, "backlog", 9) == INLINE_MERGE_MAX_ROWS + 1
    sink.write(ASSETS, rows, "backlog-rerun", 9)
    total = client.query(f"SELECT COUNT(*) AS n FROM `{table_id(settings, ASSETS)}`").result()
    assert next(iter(total))["n"] == INLINE_MERGE_MAX_ROWS + 1
    tables = [item.table_id for item in client.list_tables(dataset_id(settings))]
    assert not [name for name in tables if name.startswith(STAGING_PREFIX)], tables
