"""One value of a record, typed as its column, with the reason it falls outside the column's
domain: the worker's half of the rule the ingestors apply too (``shared.coincap.models``).

Each column's domain is declared once beside it (``shared.schemas``). Nothing here may throw,
whatever the value (a failing batch is run again and again): under ANSI mode, Spark 4's
default, a plain cast of "abc" to double fails the whole batch, so values are read with
``try_cast``, whose null becomes a reason; ``timestamp_millis`` is reached only after a range
check (beyond 9999-12-31 it overflows a long). The verdicts, the first that holds:

- it will not cast (``is not a valid FLOAT64``, ``INT64``, ``BOOL``, ``TIMESTAMP``);
- a number cast to infinity or NaN ("1e400", "NaN");
- below its column's ``minimum`` (a negative supply, rank 0);
- a TIMESTAMP outside BigQuery's range (CoinCap's ``updated``, a history point's ``time``, the
  envelope's ``source_timestamp`` and ``fetched_at``);
- a snapshot's ``source_timestamp`` further from the processing time than
  ``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS`` (history points are exempt);
- a text longer than its column's ``text_length_limit``.

A reason quotes the value, cut to ``VALUE_EXCERPT_CHARACTERS``, so it fits a warehouse request
whatever the value was.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from shared.schemas import TIMESTAMP_MAX_MS, TIMESTAMP_MIN_MS, ColumnType, TableSchema
from shared.schemas import Column as TableColumn

_SPARK_CAST_TYPE = {
    ColumnType.FLOAT64: "double",
    ColumnType.INT64: "bigint",
    ColumnType.BOOL: "boolean",
}

VALUE_EXCERPT_CHARACTERS = 40
"""The most characters of a value a reason quotes; a longer one is cut with "…"."""


def cut(text: Column, limit: int) -> Column:
    """``text``, or its first ``limit`` - 1 characters and "…" when it is longer."""
    return F.when(
        F.length(text) > limit, F.concat(F.substring(text, 1, limit - 1), F.lit("…"))
    ).otherwise(text)


def _excerpt(value: Column) -> Column:
    """``value``, or its first ``VALUE_EXCERPT_CHARACTERS`` and "…" when it is longer: ``cut``
    naming ``value`` twice rather than three times, as every value of every row is quoted, and
    each batch plans every expression again."""
    return F.concat(
        F.substring(value, 1, VALUE_EXCERPT_CHARACTERS),
        F.when(F.length(value) > VALUE_EXCERPT_CHARACTERS, F.lit("…")).otherwise(F.lit("")),
    )


def _timestamp_from_millis(millis: Column, column: TableColumn) -> tuple[Column, Column]:
    """``millis`` (a bigint) as a TIMESTAMP, null outside the column's range, and whether it
    is inside: ``timestamp_millis`` is reached only for a value it can take (beyond
    9999-12-31 it overflows a long, and the batch fails)."""
    low, high = column.timestamp_range_ms
    inside = millis.between(F.lit(low), F.lit(high))
    return F.when(inside, F.timestamp_millis(millis)), inside


def _snapshot_window_ms(hours: float) -> int:
    """The window in milliseconds, no wider than BigQuery's whole range (so the bounds around
    now stay far inside a long whatever the setting)."""
    return min(round(hours * 3_600_000), TIMESTAMP_MAX_MS - TIMESTAMP_MIN_MS)


def checked(
    raw: Column, column: TableColumn, label: str, table: TableSchema, window_hours: float
) -> tuple[Column, Column]:
    """``raw`` (the value as text) typed as ``column``, and the reason it falls outside the
    column's domain: ``<label>: '<value>' <verdict>``, null when it does not.

    One reason a value, the first verdict that holds, so the value is quoted once: each batch
    plans every expression again, and a quote per verdict cost some 0.6 s of CPU a batch."""
    verdict: Column
    if column.type == ColumnType.STRING:
        length = F.length(raw)
        limit = column.text_length_limit
        verdict = F.when(
            length > limit,
            F.concat(
                F.lit("is "),
                length.cast("string"),
                F.lit(f" characters long, over its limit of {limit}"),
            ),
        )
        typed = raw
    elif column.type == ColumnType.TIMESTAMP:
        # CoinCap's timestamps (`updated`, `time`) and the envelope's are epoch milliseconds.
        millis = raw.try_cast("bigint")
        typed, inside = _timestamp_from_millis(millis, column)
        verdict = F.when(millis.isNull(), F.lit("is not a valid TIMESTAMP")).when(
            ~inside, F.lit("is outside BigQuery's TIMESTAMP range (years 1 to 9999)")
        )
        if column.name == "source_timestamp" and table.source_timestamp_is_snapshot:
            # A page from the year 2286 is a broken server, not a fact; history is the past.
            window = F.lit(_snapshot_window_ms(window_hours))
            now = F.unix_millis(F.current_timestamp())
            verdict = verdict.when(
                (millis < now - window) | (millis > now + window),
                F.lit(
                    f"is more than {window_hours:g} hours from the processing time "
                    "(COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS)"
                ),
            )
    else:
        typed = raw.try_cast(_SPARK_CAST_TYPE[column.type])
        verdict = F.when(typed.isNull(), F.lit(f"is not a valid {column.type.value}"))
        if column.type == ColumnType.FLOAT64:
            verdict = verdict.when(
                F.isnan(typed) | typed.isin(float("inf"), float("-inf")),
                F.lit("is not a finite FLOAT64"),
            )
        if column.minimum is not None:
            verdict = verdict.when(
                typed < F.lit(column.minimum), F.lit(f"is below the minimum {column.minimum}")
            )
    # Null where ``raw`` or ``verdict`` is: a missing value is no value's problem.
    reason = F.concat(F.lit(f"{label}: '"), _excerpt(raw), F.lit("' "), verdict)
    return typed, reason
