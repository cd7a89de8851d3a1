"""Validation of CoinCap asset and exchange records: lenient about form, strict about meaning.

CoinCap sends numbers as decimal strings, sometimes as plain numbers, and leaves some fields null;
all of that is accepted. A key that is missing or empty, or a "number" that is not one, makes a
record invalid; every other field may be missing or null. "Is a number" means exactly what the
stream worker's casts store: a finite FLOAT64 ("1e400", "NaN" are not), a 64-bit integer
written with digits only ("1e3", "1.0" are not), so ingest and warehouse never disagree. A
number below its column's ``minimum`` (``shared.schemas``: a negative supply or price, rank 0)
is absurd and makes the record invalid too, as the worker quarantines it. So does every other
domain a column declares there: a text that is not valid Unicode (a lone surrogate escape such as
``"\\ud800"``) or longer than its ``text_length_limit``, a time outside BigQuery's TIMESTAMP
range (an exchange ``updated`` of 9999999999999999), and a record nested deeper than
``MAX_RECORD_NESTING_DEPTH``. The checks are derived from the columns, so a domain declared once
is checked here and in the worker alike. The
ingestors publish the raw record either way (valid ones to the data topic, invalid ones to the
dead-letter topic with the reason from ``validation_error``), so nothing here changes what is
published; the models exist to decide, and to give the reason.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator, StringConstraints, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from shared.envelope import lone_surrogate_at
from shared.schemas import (
    ASSETS,
    EXCHANGES,
    MAX_RECORD_NESTING_DEPTH,
    ColumnType,
    TableSchema,
)

RecordKind = Literal["assets", "exchanges"]


# What the stream worker's ``try_cast`` accepts, so that a record valid here is stored there
# (and one refused here would have been quarantined there): Spark trims control characters and
# spaces, then reads a double with Java's syntax (decimal or hex, an optional f/d suffix) and a
# bigint as optional sign and ASCII digits only ("1e3" and "1.0" are not bigints to Spark).
_SPARK_TRIMMED = "".join(chr(code) for code in range(0x21))
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
_HEX_TEXT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+[fFdD]?"
)
_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_INT64 = range(-(2**63), 2**63)


def _not_a_number(value: object) -> PydanticCustomError:
    return PydanticCustomError(
        "not_a_number", "not a number: {value}", {"value": _shorten(repr(value))}
    )


def _finite_double(number: Decimal | float, value: object) -> None:
    """Raise unless ``number`` is finite as a double: "1e400" is a finite Decimal, but the
    warehouse's FLOAT64 (and Spark's cast) make it infinity."""
    try:
        finite = math.isfinite(float(number))
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise PydanticCustomError(
            "not_a_number",
            "not a finite FLOAT64 number: {value}",
            {"value": _shorten(repr(value))},
        )


def _parse_number(value: object) -> Decimal:
    """A number as an exact ``Decimal``, accepted exactly when the stream worker would store it
    as a finite FLOAT64; anything else is not a number."""
    if value is None:
        raise PydanticCustomError("null", "must not be null")
    number: Decimal
    # bool is an int subclass, but True is not a price.
    if isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _not_a_number(value)
        # repr keeps a float's shortest form: 0.1 becomes 0.1, not 0.1000000000000000055...
        number = Decimal(repr(value))
    elif isinstance(value, Decimal) and value.is_finite():
        number = value
    elif isinstance(value, str):
        text = value.strip(_SPARK_TRIMMED)
        if _DECIMAL_TEXT.fullmatch(text):
            number = Decimal(text.rstrip("fFdD"))
        elif _HEX_TEXT.fullmatch(text):
            hexadecimal = float.fromhex(text.rstrip("fFdD"))
            _finite_double(hexadecimal, value)
            number = Decimal(hexadecimal)
        else:
            raise _not_a_number(value)
    else:
        raise _not_a_number(value)
    _finite_double(number, value)
    return number


def _parse_whole_number(value: object) -> int:
    """A whole number as the worker's bigint cast takes it: an int, or a string of optional
    sign and digits, within 64 bits. "1.0", "1e3" and 1.0 are not (Spark would store null)."""
    if value is None:
        raise PydanticCustomError("null", "must not be null")
    whole: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        whole = value
    elif isinstance(value, str) and _WHOLE_TEXT.fullmatch(value.strip(_SPARK_TRIMMED)):
        whole = int(value.strip(_SPARK_TRIMMED))
    if whole is None or whole not in _INT64:
        _parse_number(value)  # "many" is not a number at all, which says more
        raise PydanticCustomError(
            "not_a_whole_number", "not a whole number: {value}", {"value": _shorten(repr(value))}
        )
    return whole


Number = Annotated[Decimal, PlainValidator(_parse_number)]
"""A finite number, kept exact; CoinCap's decimal strings carry up to ~36 decimals."""

WholeNumber = Annotated[int, PlainValidator(_parse_whole_number)]

NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class AssetRecord(BaseModel):
    """One item of CoinCap's ``/assets`` answer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    # Only the key is required. CoinCap leaves figures null for illiquid or new assets, and a
    # row with a null price is still a fact worth keeping; a value that is there must be a number.
    id: NonEmptyText
    rank: WholeNumber | None = None
    symbol: str | None = None
    name: str | None = None
    supply: Number | None = None
    maxSupply: Number | None = None
    marketCapUsd: Number | None = None
    volumeUsd24Hr: Number | None = None
    priceUsd: Number | None = None
    changePercent24Hr: Number | None = None
    vwap24Hr: Number | None = None
    explorer: str | None = None


class ExchangeRecord(BaseModel):
    """One item of CoinCap's ``/exchanges`` answer. The key is ``exchangeId``; ``id`` is not
    accepted in its place (only very old documentation used it)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    exchangeId: NonEmptyText
    name: str | None = None
    rank: WholeNumber | None = None
    percentTotalVolume: Number | None = None
    volumeUsd: Number | None = None
    tradingPairs: WholeNumber | None = None
    socket: bool | None = None
    exchangeUrl: str | None = None
    updated: WholeNumber | None = None
    """When CoinCap last updated the exchange, in epoch milliseconds."""


RECORD_MODELS: dict[RecordKind, type[AssetRecord] | type[ExchangeRecord]] = {
    "assets": AssetRecord,
    "exchanges": ExchangeRecord,
}


def _minimums(table: TableSchema) -> dict[str, int]:
    return {
        column.source_field: column.minimum
        for column in table.columns
        if column.source_field is not None and column.minimum is not None
    }


MINIMUMS: dict[RecordKind, dict[str, int]] = {
    "assets": _minimums(ASSETS),
    "exchanges": _minimums(EXCHANGES),
}
"""Per record kind, each CoinCap field's smallest meaningful value, from the table schemas."""


def _text_limits(table: TableSchema) -> dict[str, int]:
    return {
        column.source_field: column.text_length_limit
        for column in table.columns
        if column.source_field is not None and column.type is ColumnType.STRING
    }


TEXT_LIMITS: dict[RecordKind, dict[str, int]] = {
    "assets": _text_limits(ASSETS),
    "exchanges": _text_limits(EXCHANGES),
}
"""Per record kind, each CoinCap text field's most characters, from the table schemas."""


def _timestamp_ranges(table: TableSchema) -> dict[str, tuple[int, int]]:
    return {
        column.source_field: column.timestamp_range_ms
        for column in table.columns
        if column.source_field is not None and column.type is ColumnType.TIMESTAMP
    }


TIMESTAMP_RANGES: dict[RecordKind, dict[str, tuple[int, int]]] = {
    "assets": _timestamp_ranges(ASSETS),
    "exchanges": _timestamp_ranges(EXCHANGES),
}
"""Per record kind, the epoch milliseconds each CoinCap time field may be, from the schemas."""


def validation_error(kind: RecordKind, raw: object) -> str | None:
    """None when ``raw`` is a valid ``kind`` record, else a short reason for the dead-letter topic.

    Reasons look like ``missing required field 'id'``, ``priceUsd: not a number: 'abc'``,
    ``rank: '0' is below the minimum 1`` or ``name: not valid Unicode: a lone surrogate at
    character 0``; several problems are joined with ``"; "``. Never raises, whatever ``raw``
    holds: it decides what the dead-letter topic gets.
    """
    if not isinstance(raw, dict):
        return f"record is not a JSON object: got {type(raw).__name__}"
    if nesting_deeper_than(raw, MAX_RECORD_NESTING_DEPTH):
        return f"record nested more than {MAX_RECORD_NESTING_DEPTH} levels deep"
    problems = _text_problems(kind, raw)
    try:
        record = RECORD_MODELS[kind].model_validate(raw)
    except ValidationError as error:
        return "; ".join([*(_describe(detail) for detail in error.errors()), *problems])
    problems += [
        f"{field}: {_shorten(repr(raw[field]))} is below the minimum {minimum}"
        for field, minimum in MINIMUMS[kind].items()
        if (value := getattr(record, field)) is not None and value < minimum
    ]
    problems += [
        f"{field}: {_shorten(repr(raw[field]))} is outside BigQuery's TIMESTAMP range "
        f"({low} to {high} epoch milliseconds)"
        for field, (low, high) in TIMESTAMP_RANGES[kind].items()
        if (value := getattr(record, field)) is not None and not low <= value <= high
    ]
    return "; ".join(problems) or None


def _text_problems(kind: RecordKind, raw: dict[Any, Any]) -> list[str]:
    """Why the record's text fields are outside their domain: not valid Unicode (a lone
    surrogate, which no UTF-8 message can carry), or longer than the column holds."""
    problems = []
    for field, limit in TEXT_LIMITS[kind].items():
        value = raw.get(field)
        if not isinstance(value, str):
            continue  # a missing or non-text value is the model's to judge
        surrogate = lone_surrogate_at(value)
        if surrogate is not None:
            problems.append(
                f"{field}: not valid Unicode: a lone surrogate at character {surrogate}"
            )
        if len(value) > limit:
            problems.append(f"{field}: {len(value)} characters, more than the limit of {limit}")
    return problems


def nesting_deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests objects and arrays more than ``limit`` levels deep.
    Walks without recursion, so no depth can raise ``RecursionError`` here."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return False


def _describe(detail: ErrorDetails) -> str:
    field = ".".join(str(part) for part in detail["loc"])
    if detail["type"] == "missing":
        return f"missing required field {field!r}"
    if detail["input"] is None:
        return f"{field}: must not be null"
    if detail["type"] == "string_too_short":
        return f"{field}: must not be empty"
    if detail["type"] in ("not_a_number", "not_a_whole_number"):
        return f"{field}: {detail['msg']}"
    return f"{field}: {detail['msg']}, got {_shorten(repr(detail['input']))}"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
