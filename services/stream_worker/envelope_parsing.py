"""A Kafka message's value read as the ingestors' envelope, or the reason it cannot be.

The first step of ``transforms.BatchRows``. Anyone who can write a topic can write anything, so
the message itself may be what is wrong, and nothing here may throw: a message with no value,
bytes that are not UTF-8, an unpaired surrogate escape (``"\\ud800"``: ``from_json`` would
quietly make it ``?``, so no column can tell), anything Spark's JSON parser refuses (not JSON,
duplicate keys, nested deeper than 1,000 levels, a number of over 1,000 digits, a string of
over 20 million characters), no ``record`` object or no ``source_timestamp`` becomes the
message's ``parse_problem``, and the message goes to the quarantine whole.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shared.envelope import ENVELOPE_FIELDS, RECORD_FIELD
from shared.schemas import RECORD_TABLES

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

_UNPAIRED_SURROGATE_ESCAPE = (
    r"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
"""A JSON escape of a high surrogate with no low one after it, or of a low one with no high one
before it: text that is not Unicode. Fixed-width look-arounds, so matching is linear."""


def envelope_columns() -> list[Column]:
    """Kafka source rows -> the Kafka coordinates, the raw value, the envelope (``envelope``)
    and ``parse_problem``: null for a usable envelope, else why it is not one.

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
