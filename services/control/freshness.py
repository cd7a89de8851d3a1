"""Freshness of the warehouse: seconds since the newest ``processing_timestamp`` per table.

The newest row is read with ``shared.warehouse.newest_row``, which looks at the last day's
partitions first, so on real BigQuery it scans (and bills) one or two partitions of one column;
only a table with nothing that recent is scanned whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from google.cloud import bigquery

from services.control.errors import DependencyUnavailable
from services.control.models import FreshnessReport, TableFreshness
from services.control.shared_answer import SharedAnswer
from shared.schemas import ASSETS, EXCHANGES, TableSchema
from shared.settings import ControlServiceSettings
from shared.warehouse import (
    UNREACHABLE_ERRORS,
    WarehouseUnavailable,
    bigquery_retry,
    newest_row,
    table_id,
    warehouse_unavailable,
)

T = TypeVar("T")

FRESHNESS_TABLES: tuple[TableSchema, ...] = (ASSETS, EXCHANGES)
READINESS_SECONDS = 3.0


def table_freshness(
    client: bigquery.Client, settings: ControlServiceSettings, schema: TableSchema
) -> TableFreshness:
    """Synchronous (the BigQuery client is); a table that does not exist yet is reported as
    such. Raises WarehouseUnavailable when the warehouse does not answer."""
    table = table_id(settings, schema)
    newest = newest_row(client, settings, table, horizon=None)
    processed = newest.processed if newest else None
    return TableFreshness(
        table=schema.table,
        table_id=table,
        exists=newest is not None,
        newest_processing_timestamp=processed,
        seconds_since_newest=(
            max(0.0, (datetime.now(UTC) - processed).total_seconds()) if processed else None
        ),
    )


def measure_freshness(client: bigquery.Client, settings: ControlServiceSettings) -> FreshnessReport:
    return FreshnessReport(
        measured_at=datetime.now(UTC),
        tables=[table_freshness(client, settings, schema) for schema in FRESHNESS_TABLES],
    )


class FreshnessReader:
    """Freshness of the asset and exchange tables, off the event loop (BigQuery's client
    blocks)."""

    def __init__(self, settings: ControlServiceSettings, client: bigquery.Client) -> None:
        self.settings = settings
        self.client = client
        keep = settings.control_answer_cache_seconds
        self.answer = SharedAnswer("freshness", self._measure, keep)
        self.check_answer = SharedAnswer("warehouse_check", self._check, keep)

    async def report(self) -> FreshnessReport:
        """The report; DependencyUnavailable (a 503) naming the warehouse when it is down. One
        query at a time, shared by the requests of a second or two."""
        return await self.answer.get()

    async def check(self) -> str | None:
        """None when the warehouse answers a listing of datasets, else why not and what to
        check; one listing at a time, shared like ``report``."""
        return await self.check_answer.get()

    async def _measure(self) -> FreshnessReport:
        try:
            return await in_daemon_thread(
                functools.partial(measure_freshness, self.client, self.settings)
            )
        except WarehouseUnavailable as error:
            raise DependencyUnavailable(error.detail) from None

    async def _check(self) -> str | None:
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
        except UNREACHABLE_ERRORS as error:
            return warehouse_unavailable(self.settings, error).detail
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
