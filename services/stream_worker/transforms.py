"""The stream worker's transformations: Kafka messages in, typed warehouse rows out.

Each function takes a DataFrame and returns one, with no I/O, so a unit test can feed it a
three-row DataFrame. Read top to bottom, they are the pipeline:

    parse_envelopes      Kafka value -> envelope columns, or a parse problem
    to_table_rows        envelope + CoinCap record -> the table's columns, typed and renamed,
                         with a quarantine reason for values outside their column's domain
    with_supply_ratio    supply / max_supply for assets
    table_rows           to_table_rows plus the derived columns a table has
    BatchRows            the micro-batch as the worker collects it: every message once, with
                         what each table makes of it (``table_row``), in one Spark query

``arrow_batch`` then splits the collected batch into each table's valid rows (deduplicated) and
the quarantine rows, in Arrow on the driver: a micro-batch is small, and one collect with no
shuffle costs far less than a Spark job per table.

Anyone who can write a topic can write anything, so no value may fail a batch: one failing
batch is run again and again, and the one query that reads every topic stores nothing more.
Every expression here is one that cannot throw (``try_cast``, ``try_parse_json``, a range
check before ``timestamp_millis``), and every value outside its column's domain, declared once
in ``shared.schemas`` and checked by the ingestors too (``shared.coincap.models``), becomes a
reason, so the message goes to the quarantine:

- the message (``parse_problem``): no value; bytes that are not UTF-8; an unpaired surrogate
  escape (``"\\ud800"``: ``from_json`` would quietly make it ``?``, so no column can tell);
  anything Spark's JSON parser refuses (not JSON, duplicate keys, nested deeper than 1,000
  levels, a number of over 1,000 digits, a string of over 20 million characters); no
  ``record`` object or no ``source_timestamp``;
- a value (``quarantine_reason``): one that will not cast (under ANSI mode, Spark 4's default,
  a plain cast of "abc" to double fails the whole batch; ``try_cast`` gives null, which we turn
  into a reason); a number cast to infinity or NaN ("1e400", "NaN"); one below its column's
  ``minimum`` (a negative supply, rank 0); a TIMESTAMP outside BigQuery's range (CoinCap's
  ``updated``, a history point's ``time``, the envelope's ``source_timestamp`` and
  ``fetched_at``: beyond it ``timestamp_millis`` overflows a long); a snapshot's
  ``source_timestamp`` further from the processing time than
  ``COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS`` (history points are exempt); a text longer than
  its column's ``text_length_limit``.

A quarantine row must still fit a warehouse request, whatever the message was: values quoted
in a reason are cut to ``VALUE_EXCERPT_CHARACTERS``, and ``BatchRows`` cuts a row's reasons to
``REASON_MAX_CHARACTERS`` and the raw value to ``RAW_VALUE_MAX_CHARACTERS``, the reason saying
how long it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shared.envelope import ENVELOPE_FIELDS, RECORD_FIELD
from shared.schemas import (
    RECORD_TABLES,
    TIMESTAMP_MAX_MS,
    TIMESTAMP_MIN_MS,
    ColumnType,
    TableSchema,
)
from shared.schemas import Column as TableColumn
from shared.settings import Settings

# Every CoinCap field a record table reads, as text: numbers come as decimal strings (and a JSON
# number or boolean read into a string field keeps its text), so nothing is lost before the cast.
RECORD_FIELDS = sorted(
    {
        column.source_field
        for table in RECORD_TABLES
        for column in table.columns
        if column.source_field is not None
    }
)

_JSON_TYPE_WORD = {"integer": "numeric", "string": "text"}

# The envelope as the ingestors write it (``shared.envelope``), with the record read as text.
# Its integers are read as text too: ``from_json`` into a long makes null of 1e16, 1.5, a number
# beyond a long and a string alike, with nothing to say why (and a null ``fetched_at`` would be
# stored as if it were absent); as text each is cast, and named in the reason when it will not.
ENVELOPE_SCHEMA = T.StructType(
    [
        *(T.StructField(field.name, T.StringType()) for field in ENVELOPE_FIELDS),
        T.StructField(
            RECORD_FIELD,
            T.StructType([T.StructField(name, T.StringType()) for name in RECORD_FIELDS]),
        ),
    ]
)

_ENVELOPE_COLUMN_NAMES = frozenset(
    field.name for field in ENVELOPE_FIELDS if field.column_type is not None
)

_SPARK_CAST_TYPE = {
    ColumnType.FLOAT64: "double",
    ColumnType.INT64: "bigint",
    ColumnType.BOOL: "boolean",
}

DEFAULT_SNAPSHOT_TIME_WINDOW_HOURS: float = Settings.model_fields[
    "snapshot_time_window_hours"
].default
"""COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS unset; the worker passes the setting itself."""

RAW_VALUE_MAX_CHARACTERS = 800
"""The most characters of a message's value a quarantine row keeps. The MERGE sink sends up to
``sink.INLINE_MERGE_MAX_ROWS`` (500) rows in one request's query parameters, and a BigQuery
request is at most 10 MB; the request is JSON with non-ASCII escaped, so one character may
take 12 bytes (a character beyond U+FFFF is two ``\\uXXXX`` escapes). 500 rows of 800 + 460
(reason and note) such characters, with each row's parameter types, come to about 8 MB. A
Storage Write API append (also at most 10 MB) carries the same rows as UTF-8, 4 bytes a
character at most. 800 characters hold a whole CoinCap asset message; the message itself stays
in Kafka at the row's topic, partition and offset until retention removes it."""
REASON_MAX_CHARACTERS = 400
"""The most characters of a row's reasons (every problem, joined); the rest is cut with "…"."""
VALUE_EXCERPT_CHARACTERS = 40
"""The most characters of a value a reason quotes; a longer one is cut with "…"."""

_UNPAIRED_SURROGATE_ESCAPE = (
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A JSON escape of a high surrogate with no low one after it, or of a low one with no high one
before it: text that is not Unicode. Fixed-width look-arounds, so matching is linear."""


def parse_envelopes(messages: DataFrame) -> DataFrame:
    """Kafka source rows -> Kafka coordinates, the raw value, the envelope, a parse problem.

    ``parse_problem`` is null for a usable envelope, else why it is not one.
    """
    return messages.select(*_envelope_parsing())


def _envelope_parsing() -> list[Column]:
    """The columns ``parse_envelopes`` selects.

    ``try_parse_json`` (Spark's variant parser) is the judge of JSON: it refuses what
    ``from_json`` would half-read (an unpaired surrogate, duplicate keys, nesting deeper than
    its limit) and never throws. ``from_json`` reads the envelope (in its permissive mode a
    malformed value is null, not an error).
    """
    raw_value = F.col("value").cast("string")
    envelope = F.from_json(raw_value, ENVELOPE_SCHEMA)
    not_json = F.try_parse_json(raw_value).isNull()
    problem = (
        F.when(F.col("value").isNull(), F.lit("message has no value"))
        .when(
            ~F.is_valid_utf8(raw_value),
            F.lit("value is not valid UTF-8 (raw_value shows bad bytes as U+FFFD)"),
        )
        .when(
            not_json & raw_value.rlike(_UNPAIRED_SURROGATE_ESCAPE),
            F.lit("value has an unpaired surrogate escape (such as \\ud800): not Unicode text"),
        )
        .when(not_json, F.lit("value is not valid JSON"))
        .when(
            envelope.getField(RECORD_FIELD).isNull(),
            F.lit(f"envelope has no '{RECORD_FIELD}' object"),
        )
    )
    for field in ENVELOPE_FIELDS:
        if field.required:
            problem = problem.when(
                envelope.getField(field.name).isNull(),
                F.lit(f"envelope has no {_JSON_TYPE_WORD[field.json_type]} '{field.name}'"),
            )
    return [
        F.col("topic"),
        F.col("partition").cast("bigint").alias("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        raw_value.alias("raw_value"),
        envelope.alias("envelope"),
        problem.alias("parse_problem"),
    ]


def _cut(text: Column, limit: int) -> Column:
    """``text``, or its first ``limit`` - 1 characters and "…" when it is longer."""
    return F.when(
        F.length(text) > limit, F.concat(F.substring(text, 1, limit - 1), F.lit("…"))
    ).otherwise(text)


def _excerpt(value: Column) -> Column:
    """``value``, or its first ``VALUE_EXCERPT_CHARACTERS`` and "…" when it is longer: ``_cut``
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


def _checked(
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


def _row_fields(table: TableSchema, snapshot_time_window_hours: float) -> dict[str, Column]:
    """The table's columns read from a parsed envelope, typed, by name, then
    ``quarantine_reason``: every reason its values give (see the module's docstring), joined;
    null when there is nothing to say."""
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
        selected[column.name], reason = _checked(
            raw, column, label, table, snapshot_time_window_hours
        )
        problems.append(reason)
    reasons = F.concat_ws("; ", F.array_compact(F.array(*problems)))
    return {
        **selected,
        "processing_timestamp": F.current_timestamp(),
        "quarantine_reason": F.when(reasons != "", reasons),
    }


COORDINATES = ("topic", "partition", "offset", "kafka_timestamp", "raw_value")
"""Where a message came from, and its value as received: what a quarantine row keeps."""


def to_table_rows(
    parsed: DataFrame,
    table: TableSchema,
    snapshot_time_window_hours: float = DEFAULT_SNAPSHOT_TIME_WINDOW_HOURS,
) -> DataFrame:
    """Parsed envelopes -> the table's columns, plus ``quarantine_reason`` and the coordinates.

    CoinCap's camelCase fields become the table's snake_case columns with the table's types;
    a value outside its column's domain, or a missing key (or other required field, such as a
    history point's ``interval`` and ``time``), makes ``quarantine_reason`` say so.
    """
    fields = _row_fields(table, snapshot_time_window_hours)
    return parsed.select(*(value.alias(name) for name, value in fields.items()), *COORDINATES)


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


def with_supply_ratio(rows: DataFrame) -> DataFrame:
    """``supply_ratio`` beside ``supply`` and ``max_supply``."""
    return rows.withColumn("supply_ratio", supply_ratio(F.col("supply"), F.col("max_supply")))


def table_rows(
    parsed: DataFrame,
    table: TableSchema,
    snapshot_time_window_hours: float = DEFAULT_SNAPSHOT_TIME_WINDOW_HOURS,
) -> DataFrame:
    """``to_table_rows`` plus the table's derived columns: the whole typing step for a table."""
    rows = to_table_rows(parsed, table, snapshot_time_window_hours)
    if "supply_ratio" in table.column_names:
        rows = with_supply_ratio(rows)
    return rows


def table_row(table: TableSchema, snapshot_time_window_hours: float) -> Column:
    """One parsed envelope as a row of ``table``: what ``table_rows`` makes of it, as a struct
    (the table's columns, derived ones included, and ``quarantine_reason``), except
    ``processing_timestamp``, which ``BatchRows`` stamps once beside it. (A field that is
    never null inside a struct that is null for other topics' messages is more than PySpark's
    Arrow conversion accepts.)"""
    fields = _row_fields(table, snapshot_time_window_hours)
    del fields["processing_timestamp"]
    row = F.struct(*(value.alias(name) for name, value in fields.items()))
    if "supply_ratio" in table.column_names:
        row = row.withField(
            "supply_ratio", supply_ratio(row.getField("supply"), row.getField("max_supply"))
        )
    return row


def rows_for_topic(parsed: DataFrame, topic: str) -> DataFrame:
    """The readable envelopes of one topic."""
    return parsed.filter(_readable_from(topic))


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

    ``snapshot_time_window_hours`` is ``Settings.snapshot_time_window_hours``: how far from
    the processing time a snapshot's ``source_timestamp`` may be.

    The column expressions are built once, when this is made, and serve every batch (they are
    unresolved, so no batch's data is in them): building them is some hundreds of calls into
    Spark's JVM, one per function and operator, which cost more than a steady batch's job.
    """

    def __init__(
        self, tables: Sequence[tuple[TableSchema, str]], snapshot_time_window_hours: float
    ) -> None:
        self._parsing = _envelope_parsing()
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
                        _cut(
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
        """The batch's rows from the Kafka source's rows."""
        return self.of_parsed(messages.select(*self._parsing))

    def of_parsed(self, parsed: DataFrame) -> DataFrame:
        """The batch's rows from ``parse_envelopes``' rows."""
        return parsed.select(*self._rows).select(*self._finished)
