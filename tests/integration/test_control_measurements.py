"""What the control service measures, against the pipeline as real processes: a simulator of its
own, both ingestors, the stream worker, the control service and Prometheus, on the session's
broker and emulator. Health and readiness, consumer lag (the broker's own offsets), freshness
(the warehouse's own newest row), and the series Prometheus scrapes.

The module shares one pipeline (``tests.harness.pipeline``); the lag test stops the worker and
pauses the ingestors, and starts and resumes them again, however it ends.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.dashboard.app import create_app
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from shared.warehouse import create_bigquery_client, table_id
from tests.harness.broker import broker_offsets
from tests.harness.pipeline import INGESTORS, Pipeline
from tests.harness.processes import LocalStack
from tests.harness.waiting import wait_for

SERVICES = (*INGESTORS, "stream-worker", "control", "prometheus")
# /freshness is measured every 2 s here (the worker writes a batch a second or so).
FRESHNESS = {"COINSTREAM_CONTROL_FRESHNESS_REFRESH_SECONDS": "2"}


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack) -> Iterator[Pipeline]:
    with Pipeline("control-measurements", 18140, services=SERVICES, overrides=FRESHNESS) as running:
        yield running


def test_healthz_and_readyz(pipeline: Pipeline) -> None:
    assert pipeline.api.json("/healthz") == {
        "status": "ok",
        "service": "control",
        "open_access": False,
    }
    ready = pipeline.api.json("/readyz")
    assert ready["status"] == "ready"
    assert ready["kafka"]["ok"] and ready["warehouse"]["ok"]


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
    api, settings = pipeline.api, pipeline.settings
    topics = [settings.topic_assets, settings.topic_exchanges]
    group = settings.stream_consumer_group
    wait_for(lambda: pipeline.worker.state() == "RUNNING", "for the worker to run", 120)
    try:
        # With the ingestors paused the worker catches up to a lag of exactly 0 (the first
        # batches take the longest: Spark compiles, the tables are made).
        pipeline.settle(300)
        stopped = api.command("stream-worker", "stop")
        assert stopped.status_code == 202, stopped.text
        # The worker finishes the batch it was in when told to stop, and commits it; after
        # that it is STOPPED and the committed offsets stay put. The lag is measured from
        # there, at the broker (a /lag answer may be up to two seconds old).
        wait_for(lambda: pipeline.worker.state() == "STOPPED", "the worker to stop", 60)

        def broker_lag() -> int:
            offsets = asyncio.run(broker_offsets(settings, group, topics))
            return sum(end - (committed or 0) for end, committed in offsets.values())

        stopped_lag = broker_lag()
        pipeline.resume_ingestors()
        # Watched at the broker: a /lag answer from before the worker caught up would pass too.
        wait_for(
            lambda: broker_lag() > stopped_lag + 500,
            "for lag to grow while the worker is stopped",
            30,
        )
        # Freeze the topics to compare with the broker exactly.
        pipeline.pause_ingestors()
        broker = asyncio.run(broker_offsets(settings, group, topics))
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
        # The worker, stopped, committed nothing since: else say what it did meanwhile.
        assert report["lag_records"] > 500, pipeline.worker.process.log_tail(30)
        lagging = [
            partition
            for topic in report["topics"]
            for partition in topic["partitions"]
            if partition["lag_records"] > 0
        ]
        assert lagging and all(partition["lag_seconds"] > 0 for partition in lagging)

        started = time.monotonic()
        assert api.command("stream-worker", "start").status_code == 202
        wait_for(lambda: api.json("/lag")["lag_records"] == 0, "for lag to return to 0", 180)
        print(f"\nlag back to 0 {time.monotonic() - started:.2f} s after start")
        broker = asyncio.run(broker_offsets(settings, group, topics))
        assert all(committed == end for end, committed in broker.values())
        assert all(
            topic["lag_seconds"] == 0 for topic in api.json("/lag")["topics"] if topic["exists"]
        )
        assert pipeline.worker.state() == "RUNNING"
    finally:
        api.command("stream-worker", "start")
        pipeline.resume_ingestors()


def test_freshness_is_seconds_since_the_newest_processing_timestamp(pipeline: Pipeline) -> None:
    """The real worker writes rows; /freshness must agree with the warehouse's own newest row.

    Compared with the pipeline settled (ingestors paused, the worker caught up), so that the
    newest row cannot move between the service's measurement and the test's own query."""
    api, settings = pipeline.api, pipeline.settings
    client = create_bigquery_client(settings)

    def newest(schema: TableSchema) -> datetime:
        [row] = client.query(
            f"SELECT MAX(processing_timestamp) AS newest FROM `{table_id(settings, schema)}`"
        ).result()
        return row["newest"]  # type: ignore[no-any-return]

    def reported() -> dict[str, Any]:
        return {table["table"]: table for table in api.json("/freshness")["tables"]}

    wait_for(
        lambda: all(table["exists"] for table in reported().values()),
        "for the worker to create and fill the tables",
        120,
    )
    wait_for(
        lambda: all((table["seconds_since_newest"] or 1e9) < 60 for table in reported().values()),
        "for fresh rows in both tables",
        120,
    )
    pipeline.settle()
    try:
        warehouse = {schema.table: newest(schema) for schema in (ASSETS, EXCHANGES)}

        def agrees() -> bool:
            return all(
                datetime.fromisoformat(table["newest_processing_timestamp"]) == warehouse[name]
                for name, table in reported().items()
            )

        # The service measures every 2 s: its first measurement after the last write agrees.
        wait_for(agrees, "/freshness to report the warehouse's newest rows", 30)
        answer = api.json("/freshness")
        measured_at = datetime.fromisoformat(answer["measured_at"])
        assert {table["table"] for table in answer["tables"]} == {"assets", "exchanges"}
        for table in answer["tables"]:
            since = (measured_at - warehouse[table["table"]]).total_seconds()
            # Each table's age is taken as its own query returns, just after ``measured_at``.
            assert since <= table["seconds_since_newest"] < since + 5, table
    finally:
        pipeline.resume_ingestors()


def test_the_dashboard_shows_what_the_pipeline_wrote(pipeline: Pipeline) -> None:
    """End to end: simulator -> ingestors -> Kafka -> worker -> warehouse -> the dashboard's API
    (in this process, on the pipeline's dataset); the browser tests drive the same API on a
    seeded warehouse."""
    with TestClient(create_app(pipeline.settings)) as dashboard:

        def latest(kind: str) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = dashboard.get(f"/api/{kind}/latest").json()[kind]
            return rows

        wait_for(
            lambda: latest("assets") and latest("exchanges"),
            "the dashboard to show the pipeline's first rows",
            120,
        )
        assets, exchanges = latest("assets"), latest("exchanges")
    assert "bitcoin" in {row["id"] for row in assets}
    assert all(row["price_usd"] > 0 for row in assets)
    shares = [row["percent_total_volume"] for row in exchanges]
    assert all(share is None or 0 <= share <= 100 for share in shares)
    assert any(share for share in shares)


def prometheus_query(pipeline: Pipeline, query: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"http://127.0.0.1:{pipeline.ports['prometheus']}/api/v1/query",
        params={"query": query},
        timeout=10,
    )
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def scraped(pipeline: Pipeline, job: str) -> bool:
    """Prometheus' last scrape of ``job`` succeeded."""
    samples = prometheus_query(pipeline, f'up{{job="{job}"}}')
    return [sample["value"][1] for sample in samples] == ["1"]


def test_prometheus_scrapes_every_service_and_has_the_lag_series(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    for service in ("control", *INGESTORS, "stream-worker"):
        job = f"coinstream-{service}"
        wait_for(functools.partial(scraped, pipeline, job), f"Prometheus to scrape {job}", 60)
    group = settings.stream_consumer_group
    lag_series: list[dict[str, Any]] = []

    def lag_series_present() -> bool:
        query = f'coinstream_consumer_lag_records{{group="{group}"}}'
        lag_series[:] = prometheus_query(pipeline, query)
        return len(lag_series) > 0

    wait_for(lag_series_present, "for the lag series in Prometheus", 60)
    assert {series["metric"]["topic"] for series in lag_series} == {
        settings.topic_assets,
        settings.topic_exchanges,
    }
    assert {series["metric"]["job"] for series in lag_series} == {"coinstream-control"}
    interval = prometheus_query(
        pipeline, 'coinstream_poll_interval_seconds{job="coinstream-asset-ingestor"}'
    )
    assert [series["value"][1] for series in interval] == ["1"], "the ingestor is not scraped"
    states = prometheus_query(
        pipeline, 'coinstream_component_state{component="asset-ingestor"} == 1'
    )
    assert [series["metric"]["state"] for series in states] in (["RUNNING"], ["PAUSED"])
    rules = httpx.get(
        f"http://127.0.0.1:{pipeline.ports['prometheus']}/api/v1/rules", timeout=10
    ).json()
    alert_names = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert "CoinstreamConsumerLagHigh" in alert_names


def test_no_secret_in_any_log_or_answer(pipeline: Pipeline) -> None:
    """The token and the API key, in use by every process here, show in no log (the worker's
    and Prometheus' included) and no answer."""
    outputs = pipeline.outputs()
    assert "coinstream_component_state" in outputs["control /metrics"]
    assert pipeline.secret_leaks(outputs) == []
