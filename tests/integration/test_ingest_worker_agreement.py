"""Ingest and worker agree on numbers: the same edge values through the ingestor's validation
and the stream worker's batch path on a real local Spark (``BatchRows``, split by
``arrow_batch``, all in one batch).

A value the ingestor accepts must be stored by the worker as a finite number, and a value it
refuses must be one the worker would quarantine or store as NaN or infinity.
"""

from __future__ import annotations

import json
import math
import time

from pyspark.sql import SparkSession

from shared.coincap.models import validation_error
from shared.envelope import PollContext, record_message
from shared.schemas import ASSETS
from tests.harness.worker_batch import TOPICS, run_batch

TOPIC = TOPICS[ASSETS.table]

# JSON text as CoinCap's body would carry it, so the ingestor sees what httpx would parse.
DOUBLE_EDGES = [
    '"96243.89"',
    '"1e400"',
    '"-1e400"',
    '"1.8e308"',
    '"1e308"',
    '"1e-400"',
    '"NaN"',
    '"nan"',
    '"Infinity"',
    '"-inf"',
    '"1d"',
    '"1F"',
    '"0x1p3"',
    '" 1.5 "',
    '"\\t2\\n"',
    '"+1"',
    '".5"',
    '"5."',
    '"1_000"',
    '"1,5"',
    '"\\u0661\\u0662"',
    '""',
    '"  "',
    '"1 2"',
    '"abc"',
    "1e400",
    "-1e400",
    "1.5",
    "7",
    "1" + "0" * 400,
    "true",
    "NaN",
    "Infinity",
]
WHOLE_EDGES = [
    '"1"',
    "1",
    '" +7 "',
    '"\\t7\\n"',
    '"-0"',
    '"1e3"',
    '"1E3"',
    '"1.0"',
    "1.0",
    '"1.5"',
    "1e3",
    '"9223372036854775807"',
    '"9223372036854775808"',
    "9223372036854775807",
    "9223372036854775808",
    '"-9223372036854775808"',
    '"-9223372036854775809"',
    '"1_000"',
    '"\\u0661\\u0662"',
    '""',
    "true",
    '"0x10"',
]
CASES = [("priceUsd", "price_usd", text) for text in DOUBLE_EDGES] + [
    ("rank", "rank", text) for text in WHOLE_EDGES
]


def test_ingest_accepts_exactly_what_the_worker_stores_as_a_finite_number(
    spark: SparkSession,
) -> None:
    now_ms = int(time.time() * 1000)  # a snapshot is checked against the processing time
    context = PollContext("p1", "assets", "coincap-simulator", now_ms, now_ms + 46)
    records = {
        f"edge-{number}": {"id": f"edge-{number}", field: json.loads(text)}
        for number, (field, _, text) in enumerate(CASES)
    }
    batch = run_batch(
        spark,
        {
            key: (TOPIC, record_message(context, TOPIC, key, record).value)
            for key, record in records.items()
        },
    )
    # A JSON number too large for a double is written as Infinity, which is not JSON: the
    # worker quarantines that message whole, so it has no row here.
    stored = {row["id"]: row for row in batch.rows(ASSETS)}
    reasons = batch.reasons()

    disagreements = []
    for number, (field, column, text) in enumerate(CASES):
        key = f"edge-{number}"
        row = stored.get(key)
        value = row[column] if row is not None else None
        worker_stores_finite = value is not None and (
            not isinstance(value, float) or math.isfinite(value)
        )
        ingest_accepts = validation_error("assets", records[key]) is None
        if ingest_accepts != worker_stores_finite:
            disagreements.append(
                f"{field}={text}: ingest {'accepts' if ingest_accepts else 'refuses'}, worker "
                f"stores {value!r} (quarantine: {reasons.get(key)})"
            )
    assert not disagreements, "\n".join(disagreements)
