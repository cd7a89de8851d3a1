"""When the records of a batch came to be: where both sinks start looking for an earlier copy."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

EVENT_TIME_COLUMNS = ("source_timestamp", "kafka_timestamp")
"""When a row's record came to be, by preference (the quarantine has only the Kafka time)."""


def oldest_event(rows: pa.Table) -> datetime | None:
    """The oldest event time among ``rows`` (see ``EVENT_TIME_COLUMNS``); None if unknown."""
    for column in EVENT_TIME_COLUMNS:
        if column in rows.column_names:
            return as_utc(pc.min(rows[column]).as_py())
    return None


def as_utc(value: object) -> datetime | None:
    """``value`` as an aware UTC datetime if it is a datetime (Arrow's may come naive)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
