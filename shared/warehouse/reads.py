"""Reading the warehouse: a query with a deadline and clear errors, and a table's newest row.

Every read goes through ``run_query``: a missing table or view is None (the stream worker has not
created it yet), a warehouse that does not answer is ``WarehouseUnavailable``, and a query the
warehouse rejects (``BadRequest``) is our bug and propagates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery

from shared.settings import WarehouseSettings
from shared.warehouse.client import bigquery_retry
from shared.warehouse.errors import UNREACHABLE_ERRORS, warehouse_unavailable

QueryParameter = bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter

RECENT_WINDOW = timedelta(days=1)
"""How far back ``newest_row`` looks first: on BigQuery, one or two day partitions."""

PARTITION_COLUMN = "processing_timestamp"
"""The column every record table is partitioned on, and every view keeps."""


def run_query(
    client: bigquery.Client,
    settings: WarehouseSettings,
    sql: str,
    parameters: Sequence[QueryParameter] = (),
    deadline: float | None = None,
) -> list[dict[str, Any]] | None:
    """Rows of ``sql`` as dicts; None when a table or view (or the dataset) does not exist yet.

    ``deadline`` bounds the whole call, retries included (default ``bigquery_timeout_seconds``).
    Raises WarehouseUnavailable when the warehouse cannot be reached; a BadRequest (a query
    the warehouse rejects) is our bug and propagates.
    """
    seconds = deadline or settings.bigquery_timeout_seconds
    try:
        job = client.query(
            sql,
            job_config=bigquery.QueryJobConfig(query_parameters=list(parameters)),
            retry=bigquery_retry(settings).with_deadline(seconds),
            timeout=seconds,
            job_retry=None,
        )
        return [dict(row.items()) for row in job.result(timeout=seconds)]
    except NotFound:
        return None
    except BadRequest:
        raise
    except UNREACHABLE_ERRORS as error:
        raise warehouse_unavailable(settings, error) from None


@dataclass(frozen=True)
class NewestRow:
    """When the newest row of a table or view was written, and optionally what it describes."""

    processed: datetime | None
    """Its ``processing_timestamp``; None when no row is recent enough (or none at all)."""
    snapshot: datetime | None
    """The newest value of the ``snapshot_column`` asked for; None when none was asked."""


def newest_row(
    client: bigquery.Client,
    settings: WarehouseSettings,
    relation: str,
    horizon: timedelta | None,
    snapshot_column: str | None = None,
    deadline: float | None = None,
) -> NewestRow | None:
    """The newest ``processing_timestamp`` of ``relation`` (``project.dataset.name``); None
    when it does not exist.

    Looks at the last day's partitions first, so on real BigQuery a pipeline that runs costs
    one or two partitions of one or two columns per call; only when nothing is that recent does
    it look back to ``horizon`` (None: the whole table).
    """
    columns = f"MAX({PARTITION_COLUMN}) AS newest_processed"
    if snapshot_column:
        columns += f", MAX({snapshot_column}) AS newest_snapshot"
    now = datetime.now(UTC)
    row: dict[str, Any] = {}
    for window in (RECENT_WINDOW, horizon):
        sql = f"SELECT {columns} FROM `{relation}`"
        parameters = []
        if window is not None:
            sql += f" WHERE {PARTITION_COLUMN} >= @since"
            parameters.append(bigquery.ScalarQueryParameter("since", "TIMESTAMP", now - window))
        rows = run_query(client, settings, sql, parameters, deadline)
        if rows is None:
            return None
        row = rows[0] if rows else {}
        if row.get("newest_processed") is not None:
            break
    return NewestRow(
        processed=_utc(row.get("newest_processed")), snapshot=_utc(row.get("newest_snapshot"))
    )


def _utc(value: Any) -> datetime | None:
    """A TIMESTAMP as an aware datetime (the emulator may answer naive ones, meaning UTC)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
