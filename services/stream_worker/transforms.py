"""The stream worker's transformations: Kafka messages in, typed warehouse rows out.

Each function takes a DataFrame and returns one, with no I/O, so a unit test can feed it a
three-row DataFrame. Read top to bottom, they are the pipeline:

    parse_envelopes      Kafka value -> envelope columns, or a parse problem
    to_table_rows        envelope + CoinCap record -> the table's columns, typed and renamed,
                         with a quarantine reason for values that will not cast
    with_supply_ratio    supply / max_supply for assets
    table_rows           to_table_rows plus the derived columns a table has
    BatchRows            the micro-batch as the worker collects it: every message once, with
                         what each table makes of it (``table_row``), in one Spark query

``arrow_batch`` then splits the collected batch into each table's valid rows (deduplicated) and
the quarantine rows, in Arrow on the driver: a micro-batch is small, and one collect with no
shuffle costs far less than a Spark job per table.

Casts use ``try_cast``: with ANSI mode on (Spark 4's default) a plain cast of "abc" to double
fails the whole batch; ``try_cast`` gives null, which we turn into a reason instead. A cast that
succeeds can still give what no record means: "1e400" and "NaN" cast to infinity and NaN, and a
value below its column's ``minimum`` (a negative supply, rank 0) is absurd; each is a reason too,
so the worker refuses what the ingestors' validation refuses (``shared.coincap.models``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shared.envelope import ENVELOPE_FIELDS, RECORD_FIELD
from shared.schemas import RECORD_TABLES, ColumnType, TableSchema

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

_SPARK_JSON_TYPE = {"integer": T.LongType(), "string": T.StringType()}
_JSON_TYPE_WORD = {"integer": "numeric", "string": "text"}

# The envelope as the ingestors write it (``shared.envelope``), with the record read as text.
ENVELOPE_SCHEMA = T.StructType(
    [
        *(
            T.StructField(field.name, _SPARK_JSON_TYPE[field.json_type])
            for field in ENVELOPE_FIELDS
        ),
        T.StructField(
            RECORD_FIELD,
            T.StructType([T.StructField(name, T.StringType()) for name in RECORD_FIELDS]),
        ),
    ]
)

_SPARK_CAST_TYPE = {
    ColumnType.FLOAT64: "double",
    ColumnType.INT64: "bigint",
    ColumnType.BOOL: "boolean",
}


def parse_envelopes(messages: DataFrame) -> DataFrame:
    """Kafka source rows -> Kafka coordinates, the raw value, the envelope, a parse problem.

    ``parse_problem`` is null for a usable envelope, else why it is not one.
    """
    return messages.select(*_envelope_parsing())


def _envelope_parsing() -> list[Column]:
    """The columns ``parse_envelopes`` selects."""
    raw_value = F.col("value").cast("string")
    envelope = F.from_json(raw_value, ENVELOPE_SCHEMA)
    problem = (
        F.when(F.col("value").isNull(), F.lit("message has no value"))
        .when(F.try_parse_json(raw_value).isNull(), F.lit("value is not valid JSON"))
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


def envelope_columns() -> dict[str, Column]:
    """The envelope fields the tables keep, by warehouse column (epoch ms -> TIMESTAMP)."""
    columns = {}
    for field in ENVELOPE_FIELDS:
        value = F.col(f"envelope.{field.name}")
        if field.column_type == "TIMESTAMP":
            columns[field.name] = F.timestamp_millis(value)
        elif field.column_type == "STRING":
            columns[field.name] = value
    return columns


def _typed(raw: Column, column_type: ColumnType) -> Column:
    if column_type == ColumnType.STRING:
        return raw
    if column_type == ColumnType.TIMESTAMP:
        # CoinCap's timestamps (`updated`) are epoch milliseconds.
        return F.timestamp_millis(raw.try_cast("bigint"))
    return raw.try_cast(_SPARK_CAST_TYPE[column_type])


def _row_fields(table: TableSchema) -> dict[str, Column]:
    """The table's columns read from a parsed envelope, typed, by name, then
    ``quarantine_reason``: what a value that will not cast, a missing required field, a value
    cast to infinity or NaN, or one below its column's ``minimum`` makes it say (null when
    there is nothing to say)."""
    record = F.col("envelope.record")
    problems = []
    selected: dict[str, Column] = {}
    for column in table.columns:
        if column.source_field is None:
            continue
        raw = record.getField(column.source_field)
        typed = _typed(raw, column.type)
        selected[column.name] = typed
        if column.required:
            problems.append(
                F.when(
                    raw.isNull() | (F.trim(raw) == ""),
                    F.lit(f"missing required field '{column.source_field}'"),
                )
            )
        if column.type != ColumnType.STRING:
            problems.append(
                F.when(
                    raw.isNotNull() & typed.isNull(),
                    F.concat(
                        F.lit(f"{column.source_field}: '"),
                        raw,
                        F.lit(f"' is not a valid {column.type.value}"),
                    ),
                )
            )
        if column.type == ColumnType.FLOAT64:
            problems.append(
                F.when(
                    F.isnan(typed) | typed.isin(float("inf"), float("-inf")),
                    F.concat(
                        F.lit(f"{column.source_field}: '"), raw, F.lit("' is not a finite FLOAT64")
                    ),
                )
            )
        if column.minimum is not None:
            problems.append(
                F.when(
                    typed < F.lit(column.minimum),
                    F.concat(
                        F.lit(f"{column.source_field}: '"),
                        raw,
                        F.lit(f"' is below the minimum {column.minimum}"),
                    ),
                )
            )
    reasons = F.concat_ws("; ", F.array_compact(F.array(*problems)))
    return {
        **selected,
        **envelope_columns(),
        "processing_timestamp": F.current_timestamp(),
        "quarantine_reason": F.when(reasons != "", reasons),
    }


COORDINATES = ("topic", "partition", "offset", "kafka_timestamp", "raw_value")
"""Where a message came from, and its value as received: what a quarantine row keeps."""


def to_table_rows(parsed: DataFrame, table: TableSchema) -> DataFrame:
    """Parsed envelopes -> the table's columns, plus ``quarantine_reason`` and the coordinates.

    CoinCap's camelCase fields become the table's snake_case columns with the table's types;
    a value present but not castable, or a missing key (or other required field, such as a
    history point's ``interval`` and ``time``), makes ``quarantine_reason`` say so.
    """
    fields = _row_fields(table)
    return parsed.select(*(value.alias(name) for name, value in fields.items()), *COORDINATES)


def supply_ratio(supply: Column, max_supply: Column) -> Column:
    """supply / max_supply; null when max supply is unknown (unbounded) or zero."""
    ratio = F.when(max_supply.isNull() | (max_supply == 0), F.lit(None)).otherwise(
        supply / max_supply
    )
    return ratio.cast("double")


def with_supply_ratio(rows: DataFrame) -> DataFrame:
    """``supply_ratio`` beside ``supply`` and ``max_supply``."""
    return rows.withColumn("supply_ratio", supply_ratio(F.col("supply"), F.col("max_supply")))


def table_rows(parsed: DataFrame, table: TableSchema) -> DataFrame:
    """``to_table_rows`` plus the table's derived columns: the whole typing step for a table."""
    rows = to_table_rows(parsed, table)
    if "supply_ratio" in table.column_names:
        rows = with_supply_ratio(rows)
    return rows


def table_row(table: TableSchema) -> Column:
    """One parsed envelope as a row of ``table``: what ``table_rows`` makes of it, as a struct
    (the table's columns, derived ones included, and ``quarantine_reason``), except
    ``processing_timestamp``, which ``BatchRows`` stamps once beside it. (A field that is
    never null inside a struct that is null for other topics' messages is more than PySpark's
    Arrow conversion accepts.)"""
    fields = _row_fields(table)
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


class BatchRows:
    """The micro-batch as the worker collects it: every message once, with what each table
    makes of it, in one Spark query, so the batch is read from Kafka, typed and collected in one
    Spark job.

    Columns: ``topic``, ``partition``, ``offset``, ``kafka_timestamp``, ``parse_problem``,
    ``processing_timestamp``; per ``(table, topic)`` a struct column named after the table,
    ``table_row(table)`` for that topic's readable envelopes and null otherwise; and
    ``raw_value``, kept only where a problem will send the message to the quarantine (a
    backlog batch of good records collects no raw JSON). ``arrow_batch`` splits the result.

    The column expressions are built once, when this is made, and serve every batch (they are
    unresolved, so no batch's data is in them): building them is some hundreds of calls into
    Spark's JVM, one per function and operator, which cost more than a steady batch's job.
    """

    def __init__(self, tables: Sequence[tuple[TableSchema, str]]) -> None:
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
                F.when(_readable_from(topic), table_row(table)).alias(table.table)
                for table, topic in tables
            ),
        ]
        problem = F.col("parse_problem").isNotNull()
        for table, _ in tables:
            problem = problem | F.col(table.table).getField("quarantine_reason").isNotNull()
        self._raw_value = F.when(problem, F.col("raw_value"))

    def of_messages(self, messages: DataFrame) -> DataFrame:
        """The batch's rows from the Kafka source's rows."""
        return self.of_parsed(messages.select(*self._parsing))

    def of_parsed(self, parsed: DataFrame) -> DataFrame:
        """The batch's rows from ``parse_envelopes``' rows."""
        return parsed.select(*self._rows).withColumn("raw_value", self._raw_value)
