"""Freshness of the warehouse: seconds since the newest ``processing_timestamp`` per table.

The query looks at the last day's partitions first, so on real BigQuery it scans (and bills)
one or two partitions of one column; only a table with nothing that recent is scanned whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.api_core.exceptions import GoogleAPIError, NotFound
from google.cloud import bigquery
from requests.exceptions import RequestException

from services.control.errors import DependencyUnavailable
from services.control.models import FreshnessReport, TableFreshness
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from shared.settings import Settings
from shared.warehouse import bigquery_retry, table_id

T = TypeVar("T")

FRESHNESS_TABLES: tuple[TableSchema, ...] = (ASSETS, EXCHANGES)
READINESS_SECONDS = 3.0


def _newest(client: bigquery.Client, settings: Settings, sql: str) -> datetime | None:
    job = client.query(
        sql,
        retry=bigquery_retry(settings),
        timeout=settings.bigquery_timeout_seconds,
        job_retry=None,
    )
    rows = list(job.result(timeout=settings.bigquery_timeout_seconds))
    newest = rows[0][0] if rows else None
    if isinstance(newest, datetime) and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return newest if isinstance(newest, datetime) else None


def table_freshness(
    client: bigquery.Client, settings: Settings, schema: TableSchema
) -> TableFreshness:
    """Synchronous (the BigQuery client is); raises google.api_core errors other than
    NotFound, which means the table does not exist yet."""
    table = table_id(settings, schema)
    column = schema.partition_column
    recent = (
        f"SELECT MAX({column}) FROM `{table}` "
        f"WHERE {column} >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 1 DAY)"
    )
    try:
        newest = _newest(client, settings, recent)
        if newest is None:
            newest = _newest(client, settings, f"SELECT MAX({column}) FROM `{table}`")
    except NotFound:
        return TableFreshness(
            table=schema.table,
            table_id=table,
            exists=False,
            newest_processing_timestamp=None,
            seconds_since_newest=None,
        )
    return TableFreshness(
        table=schema.table,
        table_id=table,
        exists=True,
        newest_processing_timestamp=newest,
        seconds_since_newest=(
            max(0.0, (datetime.now(UTC) - newest).total_seconds()) if newest else None
        ),
    )


def measure_freshness(client: bigquery.Client, settings: Settings) -> FreshnessReport:
    return FreshnessReport(
        measured_at=datetime.now(UTC),
        tables=[table_freshness(client, settings, schema) for schema in FRESHNESS_TABLES],
    )


class FreshnessReader:
    """Freshness of the asset and exchange tables, off the event loop (BigQuery's client
    blocks)."""

    def __init__(self, settings: Settings, client: bigquery.Client) -> None:
        self.settings = settings
        self.client = client

    async def report(self) -> FreshnessReport:
        try:
            return await in_daemon_thread(
                functools.partial(measure_freshness, self.client, self.settings)
            )
        except (GoogleAPIError, RequestException, OSError) as error:
            raise DependencyUnavailable(
                f"the warehouse ({warehouse_location(self.settings)}) did not answer "
                f"({type(error).__name__}); start the emulator (`make run`) or check the "
                "COINSTREAM_BIGQUERY_* / COINSTREAM_GCP_PROJECT settings, then retry"
            ) from None

    async def check(self) -> str | None:
        """None when the warehouse answers a listing of datasets, else why not."""

        # A readiness probe answers in seconds; it does not retry for the full query deadline.
        deadline = min(READINESS_SECONDS, self.settings.bigquery_timeout_seconds)

        def list_one() -> None:
            list(
                self.client.list_datasets(
                    max_results=1,
                    retry=bigquery_retry(self.settings).with_deadline(deadline),
                    timeout=deadline,
                )
            )

        try:
            await in_daemon_thread(list_one)
        except (GoogleAPIError, RequestException, OSError) as error:
            return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        return None


async def in_daemon_thread(call: Callable[[], T]) -> T:
    """``call()`` on a daemon thread of its own.

    Unlike ``asyncio.to_thread``, a BigQuery call still retrying against a dead endpoint does
    not hold up the process's exit (Ctrl-C, SIGTERM) for its whole retry deadline.
    """
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[T] = loop.create_future()

    def deliver(settle: Callable[[], None]) -> None:
        if not outcome.done():
            settle()

    def run() -> None:
        try:
            result = call()
        except BaseException as error:
            settle = functools.partial(outcome.set_exception, error)
        else:
            settle = functools.partial(outcome.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(deliver, settle)

    threading.Thread(target=run, name="warehouse-call", daemon=True).start()
    return await outcome


def warehouse_location(settings: Settings) -> str:
    if settings.uses_bigquery_emulator:
        return f"BigQuery emulator at {settings.bigquery_emulator_url}"
    return f"BigQuery project {settings.gcp_project}"
