"""The stream worker's transformations: Kafka messages in, typed warehouse rows out.

Each function takes a DataFrame and returns one, with no I/O, so a unit test can feed it a
three-row DataFrame. Read top to bottom, they are the pipeline:

    parse_envelopes      Kafka value -> envelope columns, or a parse problem
    to_table_rows        envelope + CoinCap record -> the table's columns, typed and renamed,
                         with a quarantine reason for values that will not cast
    with_supply_ratio    supply / max_supply for assets
    table_rows           to_table_rows plus the derived columns a table has
    valid_rows           rows with no problem, in the table's column order, deduplicated
    quarantine_rows      rows with a problem, as the quarantine table stores them

Casts use ``try_cast``: with ANSI mode on (Spark 4's default) a plain cast of "abc" to double
fails the whole batch; ``try_cast`` gives null, which we turn into a reason instead.
"""

from __future__ import annotations

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
    return messages.select(
        F.col("topic"),
        F.col("partition").cast("bigint").alias("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        raw_value.alias("raw_value"),
        envelope.alias("envelope"),
        problem.alias("parse_problem"),
    )


def envelope_columns() -> list[Column]:
    """The envelope fields the tables keep, as their warehouse columns (epoch ms -> TIMESTAMP)."""
    columns = []
    for field in ENVELOPE_FIELDS:
        value = F.col(f"envelope.{field.name}")
        if field.column_type == "TIMESTAMP":
            columns.append(F.timestamp_millis(value).alias(field.name))
        elif field.column_type == "STRING":
            columns.append(value.alias(field.name))
    return columns


def _typed(raw: Column, column_type: ColumnType) -> Column:
    if column_type == ColumnType.STRING:
        return raw
    if column_type == ColumnType.TIMESTAMP:
        # CoinCap's timestamps (`updated`) are epoch milliseconds.
        return F.timestamp_millis(raw.try_cast("bigint"))
    return raw.try_cast(_SPARK_CAST_TYPE[column_type])


def to_table_rows(parsed: DataFrame, table: TableSchema) -> DataFrame:
    """Parsed envelopes -> the table's columns, plus ``quarantine_reason`` and the coordinates.

    CoinCap's camelCase fields become the table's snake_case columns with the table's types;
    a value present but not castable, or a missing key (or other required field, such as a
    history point's ``interval`` and ``time``), makes ``quarantine_reason`` say so.
    """
    record = F.col("envelope.record")
    problems = []
    selected: list[Column] = []
    for column in table.columns:
        if column.source_field is None:
            continue
        raw = record.getField(column.source_field)
        typed = _typed(raw, column.type)
        selected.append(typed.alias(column.name))
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
    reasons = F.concat_ws("; ", F.array_compact(F.array(*problems)))
    return parsed.select(
        *selected,
        *envelope_columns(),
        F.current_timestamp().alias("processing_timestamp"),
        F.when(reasons != "", reasons).alias("quarantine_reason"),
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "raw_value",
    )


def with_supply_ratio(rows: DataFrame) -> DataFrame:
    """supply / max_supply; null when max supply is unknown (unbounded) or zero."""
    ratio = F.when(
        F.col("max_supply").isNull() | (F.col("max_supply") == 0), F.lit(None)
    ).otherwise(F.col("supply") / F.col("max_supply"))
    return rows.withColumn("supply_ratio", ratio.cast("double"))


def table_rows(parsed: DataFrame, table: TableSchema) -> DataFrame:
    """``to_table_rows`` plus the table's derived columns: the whole typing step for a table."""
    rows = to_table_rows(parsed, table)
    if "supply_ratio" in table.column_names:
        rows = with_supply_ratio(rows)
    return rows


def valid_rows(rows: DataFrame, table: TableSchema) -> DataFrame:
    """Rows with no problem, in the table's column order, once per (key, source timestamp)."""
    return (
        rows.filter(F.col("quarantine_reason").isNull())
        .select(*table.column_names)
        .dropDuplicates(list(table.dedup_columns))
    )


def quarantine_rows(rows: DataFrame) -> DataFrame:
    """Rows with a problem, shaped as the quarantine table stores them."""
    return rows.filter(F.col("quarantine_reason").isNotNull()).select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "raw_value",
        F.col("quarantine_reason").alias("reason"),
        "processing_timestamp",
    )


def unparseable_rows(parsed: DataFrame) -> DataFrame:
    """Messages whose envelope could not be read, shaped for the quarantine table."""
    return parsed.filter(F.col("parse_problem").isNotNull()).select(
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "raw_value",
        F.col("parse_problem").alias("reason"),
        F.current_timestamp().alias("processing_timestamp"),
    )


def rows_for_topic(parsed: DataFrame, topic: str) -> DataFrame:
    """The readable envelopes of one topic."""
    return parsed.filter((F.col("topic") == topic) & F.col("parse_problem").isNull())
