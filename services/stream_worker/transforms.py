"""The stream worker's transformations: a micro-batch of Kafka messages in, every message once
with what each table makes of it out, in one Spark query.

Read top to bottom, ``BatchRows`` is the pipeline:

    envelope_parsing     Kafka value -> envelope columns, or a parse problem
    table_row            envelope + CoinCap record -> the table's columns, typed and renamed
                         (``value_checks``), with ``supply_ratio`` where the table has it and a
                         quarantine reason for values outside their column's domain
    BatchRows            every message once, with a ``table_row`` column per table for the
                         readable messages of its topic

``arrow_batch`` then splits the collected batch into each table's valid rows (deduplicated) and
the quarantine rows, in Arrow on the driver: a micro-batch is small, and one collect with no
shuffle costs far less than a Spark job per table.

Anyone who can write a topic can write anything, so no value may fail a batch: one failing
batch is run again and again, and the one query that reads every topic stores nothing more.
Every expression is one that cannot throw, and whatever is wrong with a message
(``envelope_parsing``) or a value (``value_checks``) becomes a reason, so the message goes to
the quarantine. A quarantine row must still fit a warehouse request, whatever the message was:
``BatchRows`` cuts a row's reasons to ``REASON_MAX_CHARACTERS`` and the raw value to
``RAW_VALUE_MAX_CHARACTERS``, the reason saying how long it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from services.stream_worker.envelope_parsing import envelope_columns
from services.stream_worker.value_checks import checked, cut
from shared.envelope import ENVELOPE_FIELDS, RECORD_FIELD
from shared.schemas import TableSchema

_ENVELOPE_COLUMN_NAMES = frozenset(
    field.name for field in ENVELOPE_FIELDS if field.column_type is not None
)

RAW_VALUE_MAX_CHARACTERS = 800
"""The most characters of a message's value a quarantine row keeps. The MERGE sink sends up to
``sinks.merge.INLINE_MERGE_MAX_ROWS`` (500) rows in one request's query parameters, and a
BigQuery request is at most 10 MB; the request is JSON with non-ASCII escaped, so one character
may take 12 bytes (a character beyond U+FFFF is two ``\\uXXXX`` escapes). 500 rows of 800 + 460
(reason and note) such characters, with each row's parameter types, come to about 8 MB. A
Storage Write API append (also at most 10 MB) carries the same rows as UTF-8, 4 bytes a
character at most. 800 characters hold a whole CoinCap asset message; the message itself stays
in Kafka at the row's topic, partition and offset until retention removes it."""
REASON_MAX_CHARACTERS = 400
"""The most characters of a row's reasons (every problem, joined); the rest is cut with "…"."""

COORDINATES = ("topic", "partition", "offset", "kafka_timestamp", "raw_value")
"""Where a message came from, and its value as received: what a quarantine row keeps."""


def _row_fields(table: TableSchema, snapshot_time_window_hours: float) -> dict[str, Column]:
    """The table's columns read from a parsed envelope, typed, by name, then
    ``quarantine_reason``: every reason its values give, joined; null when there is nothing
    to say. CoinCap's camelCase fields become the table's snake_case columns; a missing key (or
    other required field, such as a history point's ``interval`` and ``time``) is a reason."""
    record = F.col("envelope").getField(RECORD_FIELD)
    problems: list[Column] = []
    selected: dict[str, Column] = {}
    for column in table.columns:
        if column.source_field is not None:
            raw = record.getField(column.source_field)
            label = column.source_field
            if column.required:
                problems.append(
                    F.when(
                        raw.isNull() | (F.trim(raw) == ""),
                        F.lit(f"missing required field '{column.source_field}'"),
                    )
                )
        elif column.name in _ENVELOPE_COLUMN_NAMES:
            # A missing required envelope field is the message's parse problem already.
            raw = F.col("envelope").getField(column.name)
            label = column.name
        else:
            continue  # derived (supply_ratio) or the worker's own (processing_timestamp)
        selected[column.name], reason = checked(
            raw, column, label, table, snapshot_time_window_hours
        )
        problems.append(reason)
    reasons = F.concat_ws("; ", F.array_compact(F.array(*problems)))
    return {**selected, "quarantine_reason": F.when(reasons != "", reasons)}


def supply_ratio(supply: Column, max_supply: Column) -> Column:
    """supply / max_supply; null when max supply is unknown (unbounded) or zero, or when the
    quotient of two finite values passes a double (1e308 / 1e-308): a ratio is a number to
    chart, and infinity is none."""
    quotient = supply / max_supply
    ratio = (
        F.when(max_supply.isNull() | (max_supply == 0), F.lit(None))
        .when(quotient.isin(float("inf"), float("-inf")), F.lit(None))
        .otherwise(quotient)
    )
    return ratio.cast("double")


def table_row(table: TableSchema, snapshot_time_window_hours: float) -> Column:
    """One parsed envelope as a row of ``table``, as a struct: the table's columns, derived
    ones included, and ``quarantine_reason``, except ``processing_timestamp``, which
    ``BatchRows`` stamps once beside it. (A field that is never null inside a struct that is
    null for other topics' messages is more than PySpark's Arrow conversion accepts.)"""
    fields = _row_fields(table, snapshot_time_window_hours)
    row = F.struct(*(value.alias(name) for name, value in fields.items()))
    if "supply_ratio" in table.column_names:
        row = row.withField(
            "supply_ratio", supply_ratio(row.getField("supply"), row.getField("max_supply"))
        )
    return row


def _readable_from(topic: str) -> Column:
    return (F.col("topic") == topic) & F.col("parse_problem").isNull()


def _with_note(reason: Column, note: Column) -> Column:
    """``reason`` and ``note`` joined, where there is a reason; null where there is none."""
    return F.when(reason.isNotNull(), F.concat_ws("; ", reason, note))


class BatchRows:
    """The micro-batch as the worker collects it: every message once, with what each table
    makes of it, in one Spark query, so the batch is read from Kafka, typed and collected in one
    Spark job.

    Columns: ``topic``, ``partition``, ``offset``, ``kafka_timestamp``, ``parse_problem``,
    ``processing_timestamp``; per ``(table, topic)`` a struct column named after the table,
    ``table_row(table)`` for that topic's readable envelopes and null otherwise; and
    ``raw_value``, kept only where a problem will send the message to the quarantine (a
    backlog batch of good records collects no raw JSON), as valid UTF-8 and cut to
    ``RAW_VALUE_MAX_CHARACTERS`` (the reason then says how long it was).
    ``arrow_batch`` splits the result.

    ``snapshot_time_window_hours`` is ``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS``: how far from
    the processing time a snapshot's ``source_timestamp`` may be.

    The column expressions are built once, when this is made, and serve every batch (they are
    unresolved, so no batch's data is in them): building them is some hundreds of calls into
    Spark's JVM, one per function and operator, which cost more than a steady batch's job.
    """

    def __init__(
        self, tables: Sequence[tuple[TableSchema, str]], snapshot_time_window_hours: float
    ) -> None:
        self._parsing = envelope_columns()
        self._rows: list[Column | str] = [
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            "raw_value",
            "parse_problem",
            F.current_timestamp().alias("processing_timestamp"),
            *(
                F.when(_readable_from(topic), table_row(table, snapshot_time_window_hours)).alias(
                    table.table
                )
                for table, topic in tables
            ),
        ]
        raw_value = F.make_valid_utf8(F.col("raw_value"))
        length = F.length(raw_value)
        note = F.when(
            length > RAW_VALUE_MAX_CHARACTERS,
            F.concat(
                F.lit(f"raw_value is the first {RAW_VALUE_MAX_CHARACTERS} of "),
                length.cast("string"),
                F.lit(" characters"),
            ),
        )
        problem = F.col("parse_problem").isNotNull()
        for table, _ in tables:
            problem = problem | F.col(table.table).getField("quarantine_reason").isNotNull()
        self._finished: list[Column | str] = [
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            F.when(problem, F.substring(raw_value, 1, RAW_VALUE_MAX_CHARACTERS)).alias("raw_value"),
            _with_note(F.col("parse_problem"), note).alias("parse_problem"),
            "processing_timestamp",
            *(
                F.col(table.table)
                .withField(
                    "quarantine_reason",
                    _with_note(
                        cut(
                            F.col(table.table).getField("quarantine_reason"),
                            REASON_MAX_CHARACTERS,
                        ),
                        note,
                    ),
                )
                .alias(table.table)
                for table, _ in tables
            ),
        ]

    def of_messages(self, messages: DataFrame) -> DataFrame:
        """The batch's rows from the Kafka source's rows (``key``, ``value``, ``topic``,
        ``partition``, ``offset``, ``timestamp``, ...)."""
        return messages.select(*self._parsing).select(*self._rows).select(*self._finished)
