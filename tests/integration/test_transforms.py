"""The stream worker's transformations, each on a small DataFrame in a real local Spark."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from services.stream_worker.arrow_batch import (
    quarantine_rows,
    split_batch,
    table_rows_of,
    unparseable_rows,
    valid_rows,
)
from services.stream_worker.transforms import (
    BatchRows,
    parse_envelopes,
    rows_for_topic,
    table_rows,
    to_table_rows,
    with_supply_ratio,
)
from shared.schemas import ASSETS, EXCHANGES, QUARANTINE
from shared.settings import Settings

pytestmark = pytest.mark.integration

SOURCE_MS = int(time.time() * 1000)
"""Now: a snapshot's time must lie within COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS of the batch."""
WINDOW_HOURS = Settings(_env_file=None).snapshot_time_window_hours
BITCOIN = {
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
KRAKEN = {
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


def envelope(record: dict[str, Any], source_ms: int = SOURCE_MS) -> bytes:
    document = {
        "schema_version": 1,
        "source": "coincap-simulator",
        "endpoint": "assets",
        "poll_id": "p1",
        "source_timestamp": source_ms,
        "fetched_at": source_ms + 40,
        "record": record,
    }
    return json.dumps(document).encode()


def kafka_messages(spark: SparkSession, values: list[tuple[str, bytes | None]]) -> DataFrame:
    """Rows shaped like Spark's Kafka source: key, value, topic, partition, offset, timestamp."""
    now = datetime(2026, 11, 27, tzinfo=UTC)
    rows = [(None, value, topic, 0, offset, now) for offset, (topic, value) in enumerate(values)]
    return spark.createDataFrame(
        rows,
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp",
    )


def test_assets_are_renamed_typed_and_keep_tiny_prices(spark: SparkSession) -> None:
    tiny = {**BITCOIN, "id": "tinycoin", "priceUsd": "0.000000000012345678", "maxSupply": None}
    parsed = parse_envelopes(
        kafka_messages(spark, [("a", envelope(BITCOIN)), ("a", envelope(tiny))])
    )
    rows = with_supply_ratio(to_table_rows(rows_for_topic(parsed, "a"), ASSETS))
    result = {row["id"]: row for row in valid_rows(rows.toArrow(), ASSETS).to_pylist()}

    bitcoin = result["bitcoin"]
    assert bitcoin["rank"] == 1
    assert math.isclose(bitcoin["market_cap_usd"], 1904557171625.0952, rel_tol=1e-15)
    assert math.isclose(bitcoin["price_usd"], 96243.89576445049, rel_tol=1e-15)
    assert bitcoin["vwap_24hr"] is None
    assert math.isclose(bitcoin["supply_ratio"], 19788862 / 21000000, rel_tol=1e-15)
    assert (
        bitcoin["source_timestamp"]
        == datetime.fromtimestamp(SOURCE_MS / 1000, UTC).replace(tzinfo=None)
        or bitcoin["source_timestamp"].timestamp() == SOURCE_MS / 1000
    )
    assert bitcoin["processing_timestamp"] is not None
    assert result["tinycoin"]["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)
    assert result["tinycoin"]["supply_ratio"] is None
    assert list(result["bitcoin"]) == ASSETS.column_names


def test_exchanges_cast_ints_booleans_and_epoch_millis(spark: SparkSession) -> None:
    parsed = parse_envelopes(kafka_messages(spark, [("e", envelope(KRAKEN))]))
    typed = to_table_rows(rows_for_topic(parsed, "e"), EXCHANGES).toArrow()
    rows = valid_rows(typed, EXCHANGES).to_pylist()
    assert len(rows) == 1
    kraken = rows[0]
    assert kraken["exchange_id"] == "kraken"
    assert kraken["rank"] == 4
    assert kraken["trading_pairs"] == 52
    assert kraken["socket"] is False
    assert kraken["updated"].timestamp() == pytest.approx(1536343139.468)
    assert kraken["percent_total_volume"] == pytest.approx(2.9468017351335531, rel=1e-15)


def test_values_that_will_not_cast_and_missing_keys_are_quarantined(spark: SparkSession) -> None:
    bad_price = {**BITCOIN, "id": "badprice", "priceUsd": "abc"}
    no_id = {key: value for key, value in BITCOIN.items() if key != "id"}
    parsed = parse_envelopes(
        kafka_messages(
            spark, [("a", envelope(bad_price)), ("a", envelope(no_id)), ("a", envelope(BITCOIN))]
        )
    )
    rows = table_rows(rows_for_topic(parsed, "a"), ASSETS).toArrow()
    assert [row["id"] for row in valid_rows(rows, ASSETS).to_pylist()] == ["bitcoin"]
    quarantined = {row["offset"]: row for row in quarantine_rows(rows).to_pylist()}
    assert quarantined[0]["reason"] == "priceUsd: 'abc' is not a valid FLOAT64"
    assert quarantined[1]["reason"] == "missing required field 'id'"
    assert quarantined[0]["raw_value"] is not None
    assert list(quarantined[0]) == QUARANTINE.column_names


def test_unparseable_messages_get_a_reason(spark: SparkSession) -> None:
    parsed = parse_envelopes(
        kafka_messages(
            spark,
            [
                ("a", b"{not json"),
                ("a", b'{"poll_id": "x"}'),
                ("a", None),
                ("a", envelope(BITCOIN)),
            ],
        )
    )
    collected = BatchRows([(ASSETS, "a")], WINDOW_HOURS).of_parsed(parsed).toArrow()
    reasons = {row["offset"]: row["reason"] for row in unparseable_rows(collected).to_pylist()}
    assert reasons == {
        0: "value is not valid JSON",
        1: "envelope has no 'record' object",
        2: "message has no value",
    }
    assert rows_for_topic(parsed, "a").count() == 1


def test_the_same_record_twice_in_a_batch_becomes_one_row(spark: SparkSession) -> None:
    parsed = parse_envelopes(
        kafka_messages(
            spark,
            [
                ("a", envelope(BITCOIN)),
                ("a", envelope(BITCOIN)),
                ("a", envelope(BITCOIN, SOURCE_MS + 1)),
            ],
        )
    )
    rows = valid_rows(table_rows(rows_for_topic(parsed, "a"), ASSETS).toArrow(), ASSETS)
    assert rows.num_rows == 2


def test_one_collect_splits_into_each_tables_rows_and_the_quarantine(spark: SparkSession) -> None:
    """The worker's path: every message read, typed and collected once, split in Arrow."""
    bad_price = {**BITCOIN, "id": "badprice", "priceUsd": "abc"}
    parsed = parse_envelopes(
        kafka_messages(
            spark,
            [
                ("a", envelope(BITCOIN)),
                ("e", envelope(KRAKEN)),
                ("a", b"{not json"),
                ("a", envelope(bad_price)),
                ("a", envelope(BITCOIN)),  # the same record twice: one row
                ("e", None),
            ],
        )
    )
    tables = [(ASSETS, "a"), (EXCHANGES, "e")]
    collected = BatchRows(tables, WINDOW_HOURS).of_parsed(parsed).toArrow()
    split = split_batch(collected, [ASSETS, EXCHANGES])

    assert [row["id"] for row in split.rows["assets"].to_pylist()] == ["bitcoin"]
    assert split.rows["assets"].column_names == ASSETS.column_names
    assert [row["exchange_id"] for row in split.rows["exchanges"].to_pylist()] == ["kraken"]
    reasons = {row["offset"]: row["reason"] for row in split.quarantine.to_pylist()}
    assert reasons == {
        2: "value is not valid JSON",
        3: "priceUsd: 'abc' is not a valid FLOAT64",
        5: "message has no value",
    }
    assert split.quarantine.column_names == QUARANTINE.column_names
    assert all(row["processing_timestamp"] for row in split.quarantine.to_pylist())
    assert split.coordinates.column("offset").to_pylist() == [0, 1, 2, 3, 4, 5]
    # Raw JSON is collected only for what goes to the quarantine.
    kept_raw = [row["offset"] for row in collected.to_pylist() if row["raw_value"] is not None]
    assert kept_raw == [2, 3]


def test_one_collect_types_each_row_as_the_per_table_step_does(spark: SparkSession) -> None:
    tiny = {**BITCOIN, "id": "tinycoin", "priceUsd": "0.000000000012345678", "maxSupply": None}
    parsed = parse_envelopes(
        kafka_messages(spark, [("a", envelope(BITCOIN)), ("a", envelope(tiny))])
    )
    one_collect = table_rows_of(
        BatchRows([(ASSETS, "a")], WINDOW_HOURS).of_parsed(parsed).toArrow(), ASSETS
    )
    per_table = table_rows(rows_for_topic(parsed, "a"), ASSETS).toArrow()
    drop = ["processing_timestamp", "raw_value"]  # stamped per query; kept only for problems
    assert (
        one_collect.drop_columns(drop).to_pylist()
        == per_table.select(one_collect.column_names).drop_columns(drop).to_pylist()
    )
