"""Record validation: lenient about how CoinCap writes values, strict about what they mean."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.coincap.models import AssetRecord, ExchangeRecord, validation_error
from shared.schemas import MAX_RECORD_NESTING_DEPTH, TIMESTAMP_MAX_MS, TIMESTAMP_MIN_MS

# CoinCap v3's documented examples, verbatim.
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
    "vwap24Hr": "95583.4674577419449477",
    "explorer": "https://blockchain.info/",
    "tokens": {},
}
KRAKEN: dict[str, Any] = {
    "exchangeId": "kraken",
    "name": "Kraken",
    "rank": "4",
    "percentTotalVolume": "2.946801735133553120000000000000000000",
    "volumeUsd": "84969370.4499608426167365",
    "tradingPairs": "52",
    "socket": False,
    "exchangeUrl": "https://kraken.com",
    "updated": 1536343139468,
}


def without(record: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != field}


def test_documented_records_are_valid_and_keep_every_digit() -> None:
    assert validation_error("assets", BITCOIN) is None
    assert validation_error("exchanges", KRAKEN) is None

    asset = AssetRecord.model_validate(BITCOIN)
    assert asset.priceUsd == Decimal("96243.8957644504882220")
    assert str(asset.marketCapUsd) == "1904557171625.0952172577833640"
    assert asset.rank == 1

    exchange = ExchangeRecord.model_validate(KRAKEN)
    assert exchange.percentTotalVolume == Decimal("2.946801735133553120000000000000000000")
    assert (exchange.rank, exchange.tradingPairs, exchange.updated) == (4, 52, 1536343139468)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("96243.8957644504882220", Decimal("96243.8957644504882220")),
        ("0.000000000012345678901234567890", Decimal("0.000000000012345678901234567890")),
        (" 42.5 ", Decimal("42.5")),
        ("1E-12", Decimal("1E-12")),
        (96243, Decimal(96243)),
        (0.1, Decimal("0.1")),  # the float's shortest form, not its binary expansion
        (1.5e-12, Decimal("1.5e-12")),
    ],
)
def test_numbers_may_be_decimal_strings_ints_or_floats(value: object, expected: Decimal) -> None:
    record = {**BITCOIN, "priceUsd": value}
    assert validation_error("assets", record) is None
    assert AssetRecord.model_validate(record).priceUsd == expected


@pytest.mark.parametrize("rank", ["1", 1, " 1 ", "+1"])
def test_rank_and_trading_pairs_become_int(rank: object) -> None:
    assert AssetRecord.model_validate({**BITCOIN, "rank": rank}).rank == 1
    exchange = ExchangeRecord.model_validate({**KRAKEN, "rank": rank, "tradingPairs": rank})
    assert exchange.rank == 1
    assert exchange.tradingPairs == 1


def test_updated_may_be_a_numeric_string() -> None:
    exchange = ExchangeRecord.model_validate({**KRAKEN, "updated": "1536343139468"})
    assert exchange.updated == 1536343139468


def test_nulls_are_allowed_where_coincap_sends_them() -> None:
    asset = {**BITCOIN, "maxSupply": None, "vwap24Hr": None, "explorer": None}
    exchange = {**KRAKEN, "percentTotalVolume": None, "volumeUsd": None, "socket": None}
    assert validation_error("assets", asset) is None
    assert validation_error("exchanges", exchange) is None
    # Absent counts as null for these fields.
    assert validation_error("assets", without(BITCOIN, "vwap24Hr")) is None


def test_unknown_fields_are_allowed() -> None:
    assert validation_error("assets", {**BITCOIN, "newField": [1, 2]}) is None
    assert validation_error("exchanges", {**KRAKEN, "country": "US"}) is None


@pytest.mark.parametrize(
    ("kind", "record", "reason"),
    [
        ("assets", without(BITCOIN, "id"), "missing required field 'id'"),
        ("assets", {**BITCOIN, "id": ""}, "id: must not be empty"),
        ("assets", {**BITCOIN, "id": None}, "id: must not be null"),
        ("assets", {**BITCOIN, "priceUsd": "abc"}, "priceUsd: not a number: 'abc'"),
        ("assets", {**BITCOIN, "priceUsd": ""}, "priceUsd: not a number: ''"),
        ("assets", {**BITCOIN, "priceUsd": "NaN"}, "priceUsd: not a number: 'NaN'"),
        ("assets", {**BITCOIN, "priceUsd": True}, "priceUsd: not a number: True"),
        ("assets", {**BITCOIN, "supply": {"value": 1}}, "supply: not a number: {'value': 1}"),
        ("assets", {**BITCOIN, "rank": "1.5"}, "rank: not a whole number: '1.5'"),
        # As the stream worker's bigint cast: digits only, within 64 bits.
        ("assets", {**BITCOIN, "rank": "1e3"}, "rank: not a whole number: '1e3'"),
        ("assets", {**BITCOIN, "rank": "1.0"}, "rank: not a whole number: '1.0'"),
        ("assets", {**BITCOIN, "rank": 1.0}, "rank: not a whole number: 1.0"),
        ("assets", {**BITCOIN, "rank": 2**63}, f"rank: not a whole number: {2**63}"),
        # As the stream worker's double cast: finite, Java's number syntax.
        (
            "assets",
            {**BITCOIN, "priceUsd": "1e400"},
            "priceUsd: not a finite FLOAT64 number: '1e400'",
        ),
        ("assets", {**BITCOIN, "priceUsd": "1_000"}, "priceUsd: not a number: '1_000'"),
        ("assets", {**BITCOIN, "priceUsd": float("inf")}, "priceUsd: not a number: inf"),
        ("exchanges", without(KRAKEN, "exchangeId"), "missing required field 'exchangeId'"),
        ("exchanges", {**KRAKEN, "updated": "yesterday"}, "updated: not a number: 'yesterday'"),
        ("exchanges", {**KRAKEN, "tradingPairs": "many"}, "tradingPairs: not a number: 'many'"),
        ("assets", ["bitcoin"], "record is not a JSON object: got list"),
    ],
)
def test_invalid_records_get_a_short_reason(kind: Any, record: object, reason: str) -> None:
    assert validation_error(kind, record) == reason


def test_an_exchange_keyed_by_the_old_id_field_is_invalid() -> None:
    old_style = {**without(KRAKEN, "exchangeId"), "id": "kraken"}
    assert validation_error("exchanges", old_style) == "missing required field 'exchangeId'"


def test_several_problems_are_all_named() -> None:
    reason = validation_error("assets", {**without(BITCOIN, "id"), "priceUsd": "abc"})
    assert reason == "missing required field 'id'; priceUsd: not a number: 'abc'"


def test_validation_does_not_change_the_raw_record() -> None:
    record = {**BITCOIN, "id": "  bitcoin  ", "rank": "1"}
    original = dict(record)
    assert validation_error("assets", record) is None
    assert record == original


def test_only_the_key_is_required() -> None:
    assert validation_error("assets", {"id": "newcoin", "priceUsd": None, "rank": None}) is None
    assert validation_error("exchanges", {"exchangeId": "tinyex", "tradingPairs": None}) is None


# --- Domains: each column's, from shared/schemas/tables.py ----------------------------------


def nested_list(depth: int) -> list[Any]:
    """``[[...]]`` ``depth`` levels deep, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("kind", "record", "reason"),
    [
        # Spark's timestamp_millis overflows past BigQuery's range and fails the whole batch.
        (
            "exchanges",
            {**KRAKEN, "updated": 9999999999999999},
            "updated: 9999999999999999 is outside BigQuery's TIMESTAMP range "
            f"({TIMESTAMP_MIN_MS} to {TIMESTAMP_MAX_MS} epoch milliseconds)",
        ),
        (
            "exchanges",
            {**KRAKEN, "updated": str(TIMESTAMP_MIN_MS - 1)},
            f"updated: '{TIMESTAMP_MIN_MS - 1}' is outside BigQuery's TIMESTAMP range "
            f"({TIMESTAMP_MIN_MS} to {TIMESTAMP_MAX_MS} epoch milliseconds)",
        ),
        # JSON's "\ud800" escape decodes to a lone surrogate, which no UTF-8 message can carry.
        (
            "assets",
            {**BITCOIN, "name": "\ud800"},
            "name: not valid Unicode: a lone surrogate at character 0",
        ),
        (
            "exchanges",
            {**KRAKEN, "exchangeUrl": "https://kraken.com/\udfff"},
            "exchangeUrl: not valid Unicode: a lone surrogate at character 19",
        ),
        (
            "assets",
            {**BITCOIN, "explorer": "x" * 2_000_000},
            "explorer: 2000000 characters, more than the limit of 2048",
        ),
        ("assets", {**BITCOIN, "id": "b" * 201}, "id: 201 characters, more than the limit of 200"),
        (
            "exchanges",
            {**KRAKEN, "exchangeId": "k" * 300},
            "exchangeId: 300 characters, more than the limit of 200",
        ),
        (
            "assets",
            {**BITCOIN, "symbol": "S" * 1025, "name": "\ud800" * 2},
            "symbol: 1025 characters, more than the limit of 200; "
            "name: not valid Unicode: a lone surrogate at character 0",
        ),
        (
            "assets",
            {**BITCOIN, "tokens": nested_list(32)},
            f"record nested more than {MAX_RECORD_NESTING_DEPTH} levels deep",
        ),
        # Far past Python's recursion limit: the check walks without recursing.
        (
            "exchanges",
            {**KRAKEN, "notes": nested_list(50_000)},
            f"record nested more than {MAX_RECORD_NESTING_DEPTH} levels deep",
        ),
    ],
    ids=[
        "updated-9999999999999999",
        "updated-before-year-1",
        "lone-surrogate-name",
        "lone-surrogate-url",
        "explorer-2-MB",
        "asset-id-too-long",
        "exchange-id-too-long",
        "several-text-problems",
        "nested-33-levels",
        "nested-50000-levels",
    ],
)
def test_values_outside_their_domain_are_refused_with_the_reason(
    kind: Any, record: object, reason: str
) -> None:
    assert validation_error(kind, record) == reason


def test_a_text_problem_is_named_beside_the_models_own() -> None:
    reason = validation_error("assets", {**BITCOIN, "priceUsd": "abc", "name": "\ud800"})
    assert reason == (
        "priceUsd: not a number: 'abc'; name: not valid Unicode: a lone surrogate at character 0"
    )


def test_values_at_the_edges_of_their_domain_are_valid() -> None:
    edges = [
        ("exchanges", {**KRAKEN, "updated": TIMESTAMP_MAX_MS}),
        ("exchanges", {**KRAKEN, "updated": TIMESTAMP_MIN_MS}),
        ("exchanges", {**KRAKEN, "exchangeId": "k" * 200, "name": "N" * 200}),
        ("assets", {**BITCOIN, "explorer": "x" * 2048, "symbol": "S" * 200}),
        # Non-ASCII text is valid Unicode: only lone surrogates are not.
        ("assets", {**BITCOIN, "name": "Ünïcödé 币 🚀", "symbol": "₿"}),
        # The record is level 1, so its fields may nest 31 levels more.
        ("assets", {**BITCOIN, "tokens": nested_list(MAX_RECORD_NESTING_DEPTH - 1)}),
    ]
    for kind, record in edges:
        assert validation_error(kind, record) is None, record  # type: ignore[arg-type]
