"""CoinCap records and the Kafka messages around them, as the tests of the stream worker's batch
path and of the worker process write them: healthy ones, and the hostile values no batch may
fail on (each with the start of the quarantine reason it must get)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from shared.settings import Settings

WINDOW_HOURS = Settings(_env_file=None).snapshot_time_window_hours
"""COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS as the test workers have it: how far from the batch a
snapshot's ``source_timestamp`` may be."""
HOUR_MS = 3_600_000
NOW_MS = int(time.time() * 1000)
"""When this module was imported: a snapshot near now is inside the window."""

BITCOIN: dict[str, Any] = {
    "id": "bitcoin",
    "rank": "1",
    "symbol": "BTC",
    "name": "Bitcoin",
    "supply": "19788862.0000000000000000",
    "maxSupply": "21000000.0000000000000000",
    "marketCapUsd": "1904557171625.0952172577833640",
    "volumeUsd24Hr": "12724040223.1452060699561802",
    "priceUsd": "96243.8957644504882220",
    "changePercent24Hr": "0.9762522061124105",
    "vwap24Hr": None,
    "explorer": "https://blockchain.info/",
}
KRAKEN: dict[str, Any] = {
    "exchangeId": "kraken",
    "name": "Kraken",
    "rank": 4,
    "percentTotalVolume": "2.946801735133553120000000000000000000",
    "volumeUsd": "84969370.4499608426167365",
    "tradingPairs": "52",
    "socket": False,
    "exchangeUrl": "https://kraken.com",
    "updated": 1536343139468,
}
POINT: dict[str, Any] = {
    "id": "bitcoin",
    "interval": "h1",
    "time": 1_385_856_000_000,  # 2013-12-01: history is the past, and exempt from the window
    "priceUsd": "1130.52",
    "circulatingSupply": "12040000",
}
"""A history point as the backfill's topic carries it."""


def message(record: Any, **envelope: str) -> bytes:
    """An envelope as the ingestors write it, now, around ``record``; ``envelope`` replaces a
    field with JSON text as given (``source_timestamp="1e16"``), and ``record`` may be JSON
    text too."""
    now = int(time.time() * 1000)
    fields = {
        "schema_version": "1",
        "source": '"coincap-simulator"',
        "endpoint": '"assets"',
        "poll_id": '"p1"',
        "source_timestamp": str(now),
        "fetched_at": str(now + 40),
        **envelope,
        "record": record if isinstance(record, str) else json.dumps(record),
    }
    return ("{" + ",".join(f'"{name}":{text}' for name, text in fields.items()) + "}").encode()


def history(point: dict[str, Any], time_text: str | None = None) -> bytes:
    """A backfill's message: the point's time is its source timestamp; ``time_text`` replaces
    the time with JSON text as given."""
    point_time = time_text or str(point["time"])
    record = json.dumps(point).replace(f'"time": {point["time"]}', f'"time": {point_time}')
    return message(record, source_timestamp=point_time, endpoint='"history"')


def kafka_messages(spark: SparkSession, values: list[tuple[str, bytes | None]]) -> DataFrame:
    """``(topic, value)`` pairs as Spark's Kafka source gives them: key, value, topic,
    partition, offset (each message's place in ``values``), timestamp."""
    now = datetime(2026, 11, 27, tzinfo=UTC)
    rows = [(None, value, topic, 0, offset, now) for offset, (topic, value) in enumerate(values)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )


OUTSIDE_WINDOW_MS = NOW_MS - int((WINDOW_HOURS + 1) * HOUR_MS)
LONG_NAME = "n" * 5000
HOSTILE: list[tuple[str, bytes, str]] = [
    # (topic: "a" assets, "e" exchanges, "h" history; value; the start of its reason)
    (
        "e",
        message({**KRAKEN, "updated": 9999999999999999}),
        "updated: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="9999999999999999"),
        "source_timestamp: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="-9223372036854775808"),
        "source_timestamp: '-9223372036854775808' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="1e16"),
        "source_timestamp: '1.0E16' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp="99999999999999999999999"),
        "source_timestamp: '99999999999999999999999' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, source_timestamp='"soon"'),
        "source_timestamp: 'soon' is not a valid TIMESTAMP",
    ),
    (
        "a",
        message(BITCOIN, fetched_at="9999999999999999"),
        "fetched_at: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    ("a", message(BITCOIN, fetched_at="1e16"), "fetched_at: '1.0E16' is not a valid TIMESTAMP"),
    (
        "e",
        message(KRAKEN, source_timestamp=str(OUTSIDE_WINDOW_MS)),
        f"source_timestamp: '{OUTSIDE_WINDOW_MS}' is more than {WINDOW_HOURS:g} hours from the "
        "processing time (COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS)",
    ),
    (
        "h",
        history(POINT, "9999999999999999"),
        "time: '9999999999999999' is outside BigQuery's TIMESTAMP range",
    ),
    (
        "a",
        message({**BITCOIN, "name": LONG_NAME}),
        f"name: '{LONG_NAME[:40]}…' is 5000 characters long, over its limit of 200",
    ),
    (
        "a",
        message(BITCOIN, poll_id=json.dumps("p" * 1025)),
        f"poll_id: '{'p' * 40}…' is 1025 characters long, over its limit of 1024",
    ),
    (
        "a",
        message({**BITCOIN, "name": "Bit\ud800coin"}),
        "value has an unpaired surrogate escape (such as \\ud800): not Unicode text",
    ),
    ("a", message(BITCOIN).replace(b"Bitcoin", b"Bit\xff\xfecoin"), "value is not valid UTF-8"),
    ("a", b"\xff\xfe not JSON either", "value is not valid UTF-8"),
    (
        "a",
        message(json.dumps(BITCOIN)[:-1] + ', "tokens": ' + "[" * 5000 + "]" * 5000 + "}"),
        "value is not valid JSON",
    ),
    (
        "a",
        message(json.dumps(BITCOIN).replace('"96243.8957644504882220"', "1" + "0" * 1200)),
        "value is not valid JSON",
    ),
    (
        "a",
        message(json.dumps(BITCOIN).replace('"96243.8957644504882220"', "1e400")),
        "priceUsd: '\"Infinity\"' is not a valid FLOAT64",
    ),
    (
        "e",
        message(json.dumps(KRAKEN).replace('"rank": 4', '"rank": 99999999999999999999999')),
        "rank: '99999999999999999999999' is not a valid INT64",
    ),
]
"""Values written straight to a topic (anyone who can write a topic can write anything): none
may fail a batch, and each must end in the quarantine with its reason."""
HUGE = message({name: "9" * 5000 for name in BITCOIN}, poll_id=json.dumps("p" * 70_000))
"""A message of some 130,000 characters with every field over its limit: its quarantine row
must still fit a warehouse request."""
