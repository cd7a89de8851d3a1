"""The stream worker's transformations on a real local Spark, through the worker's own batch path
(``BatchRows`` collected once, split by ``arrow_batch``): every case is a message of one batch,
so the module costs one Spark job, and each test reads what the sinks would receive."""

from __future__ import annotations

import functools
import math
import time

import pytest
from pyspark.sql import SparkSession

from services.stream_worker.arrow_batch import table_rows_of
from shared.schemas import ASSETS, EXCHANGES, QUARANTINE
from tests.harness.records import BITCOIN, KRAKEN, message
from tests.harness.worker_batch import WorkerBatch, run_batch

SOURCE_MS = int(time.time() * 1000)
"""Now: a snapshot's time must lie within COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS of the batch."""
TINY = {**BITCOIN, "id": "tinycoin", "priceUsd": "0.000000000012345678", "maxSupply": None}
DUPCOIN = {**BITCOIN, "id": "dupcoin"}
NO_ID = {key: value for key, value in BITCOIN.items() if key != "id"}


def at(record: dict[str, object], source_ms: int = SOURCE_MS) -> bytes:
    return message(record, source_timestamp=str(source_ms), fetched_at=str(source_ms + 40))


MESSAGES: dict[str, tuple[str, bytes | None]] = {
    "bitcoin": ("a", at(BITCOIN)),
    "tiny price": ("a", at(TINY)),
    "kraken": ("e", at(KRAKEN)),
    "bad price": ("a", at({**BITCOIN, "id": "badprice", "priceUsd": "abc"})),
    "no id": ("a", at(NO_ID)),
    "not json": ("a", b"{not json"),
    "no record": ("a", b'{"poll_id": "x"}'),
    "no value": ("a", None),
    "bitcoin again": ("a", at(BITCOIN)),
    "dupcoin": ("a", at(DUPCOIN)),
    "dupcoin again": ("a", at(DUPCOIN)),
    "dupcoin a millisecond later": ("a", at(DUPCOIN, SOURCE_MS + 1)),
    "no value for exchanges": ("e", None),
}


@functools.cache
def _batch(spark: SparkSession) -> WorkerBatch:
    return run_batch(spark, MESSAGES)


@pytest.fixture
def batch(spark: SparkSession) -> WorkerBatch:
    """Every message above in one batch, run once for the module."""
    return _batch(spark)


def test_assets_are_renamed_typed_and_keep_tiny_prices(batch: WorkerBatch) -> None:
    result = {row["id"]: row for row in batch.rows(ASSETS)}

    bitcoin = result["bitcoin"]
    assert list(bitcoin) == ASSETS.column_names
    assert bitcoin["rank"] == 1
    assert math.isclose(bitcoin["market_cap_usd"], 1904557171625.0952, rel_tol=1e-15)
    assert math.isclose(bitcoin["price_usd"], 96243.89576445049, rel_tol=1e-15)
    assert bitcoin["vwap_24hr"] is None
    assert math.isclose(bitcoin["supply_ratio"], 19788862 / 21000000, rel_tol=1e-15)
    assert bitcoin["source_timestamp"].timestamp() == SOURCE_MS / 1000
    assert bitcoin["processing_timestamp"] is not None
    assert result["tinycoin"]["price_usd"] == pytest.approx(1.2345678e-11, rel=1e-15)
    assert result["tinycoin"]["supply_ratio"] is None


def test_exchanges_cast_ints_booleans_and_epoch_millis(batch: WorkerBatch) -> None:
    [kraken] = batch.rows(EXCHANGES)
    assert kraken["exchange_id"] == "kraken"
    assert kraken["rank"] == 4
    assert kraken["trading_pairs"] == 52
    assert kraken["socket"] is False
    assert kraken["updated"].timestamp() == pytest.approx(1536343139.468)
    assert kraken["percent_total_volume"] == pytest.approx(2.9468017351335531, rel=1e-15)
    assert list(kraken) == EXCHANGES.column_names


def test_values_that_will_not_cast_and_missing_keys_are_quarantined(batch: WorkerBatch) -> None:
    reasons = batch.reasons()
    assert reasons["bad price"] == "priceUsd: 'abc' is not a valid FLOAT64"
    assert reasons["no id"] == "missing required field 'id'"
    assert "badprice" not in batch.keys(ASSETS)
    assert batch.split.quarantine.column_names == QUARANTINE.column_names
    bad_price = MESSAGES["bad price"][1]
    assert (
        bad_price is not None and batch.quarantined("bad price")["raw_value"] == bad_price.decode()
    )


def test_unparseable_messages_get_a_reason_and_make_no_tables_row(batch: WorkerBatch) -> None:
    reasons = batch.reasons()
    assert reasons["not json"] == "value is not valid JSON"
    assert reasons["no record"] == "envelope has no 'record' object"
    assert reasons["no value"] == "message has no value"
    assert reasons["no value for exchanges"] == "message has no value"
    # A table types only the readable messages of its own topic.
    unreadable = {"not json", "no record", "no value", "no value for exchanges"}
    for table, topic in [(ASSETS, "a"), (EXCHANGES, "e")]:
        typed = table_rows_of(batch.collected, table)["offset"].to_pylist()
        assert [batch.labels[offset] for offset in typed] == [
            label
            for label, (message_topic, _) in MESSAGES.items()
            if message_topic == topic and label not in unreadable
        ]


def test_the_same_record_twice_in_a_batch_becomes_one_row(batch: WorkerBatch) -> None:
    keys = batch.keys(ASSETS)
    assert keys.count("bitcoin") == 1
    # The same id at another source timestamp is another row.
    assert keys.count("dupcoin") == 2


def test_one_collect_splits_into_each_tables_rows_and_the_quarantine(batch: WorkerBatch) -> None:
    """Every message lands exactly once: in its table (once per key) or in the quarantine."""
    split = batch.split
    assert batch.keys(ASSETS) == ["bitcoin", "tinycoin", "dupcoin", "dupcoin"]
    assert split.rows["assets"].column_names == ASSETS.column_names
    assert batch.keys(EXCHANGES) == ["kraken"]
    assert batch.reasons() == {
        "bad price": "priceUsd: 'abc' is not a valid FLOAT64",
        "no id": "missing required field 'id'",
        "not json": "value is not valid JSON",
        "no record": "envelope has no 'record' object",
        "no value": "message has no value",
        "no value for exchanges": "message has no value",
    }
    assert all(row["processing_timestamp"] for row in split.quarantine.to_pylist())
    assert split.coordinates.column("offset").to_pylist() == list(range(len(MESSAGES)))
    # Raw JSON is collected only for what goes to the quarantine (a null value has none).
    kept_raw = [
        batch.labels[row["offset"]]
        for row in batch.collected.to_pylist()
        if row["raw_value"] is not None
    ]
    assert kept_raw == ["bad price", "no id", "not json", "no record"]
