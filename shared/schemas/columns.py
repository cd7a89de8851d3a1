"""What a warehouse column is: its type, where its value comes from, and its domain.

Every value that reaches a table comes from outside (CoinCap, or anyone who can write a topic),
so each column declares its domain here, once, and both ends check it: the ingestors
dead-letter a record outside it (``shared.coincap.models``), the stream worker quarantines the
row with expressions that cannot throw (``services.stream_worker.value_checks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TIMESTAMP_MIN_MS = -62_135_596_800_000
"""0001-01-01T00:00:00Z in epoch milliseconds: BigQuery's earliest TIMESTAMP."""
TIMESTAMP_MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z in epoch milliseconds: BigQuery's latest TIMESTAMP (to the
millisecond, the finest CoinCap sends). Beyond it Spark's ``timestamp_millis`` overflows a long
and fails the whole batch."""

DEFAULT_MAX_TEXT_LENGTH = 1024
"""Characters a text column holds unless it says otherwise: far more than any CoinCap name or
URL, far less than a value that could fill a Kafka message or a BigQuery request."""

MAX_RECORD_NESTING_DEPTH = 32
"""How deeply a record's JSON may nest (the record object itself is level 1). CoinCap's deepest
field (``tokens``, a map of lists) is level 3; a record far deeper is refused at ingest rather
than risk a JSON encoder or parser's recursion limit anywhere downstream."""


class ColumnType(StrEnum):
    """Column types, named as BigQuery names them."""

    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"


@dataclass(frozen=True)
class Column:
    """One warehouse column, and where its value comes from."""

    name: str
    type: ColumnType
    description: str
    required: bool = False
    source_field: str | None = None
    """The CoinCap field this column is read from; None for envelope and derived columns."""
    minimum: int | None = None
    """The smallest value that means something (0 for a supply or a price, 1 for a rank). A
    smaller one (a negative supply, rank 0) is absurd: the ingestors dead-letter the record and
    the worker quarantines the row, with the reason, rather than store it."""
    max_length: int | None = None
    """STRING only: the most characters a value may have (``text_length_limit``). Every text
    must also be valid Unicode: a lone surrogate (``"\\ud800"``) is outside every domain."""

    @property
    def text_length_limit(self) -> int:
        """The most characters a STRING value of this column may have."""
        return self.max_length if self.max_length is not None else DEFAULT_MAX_TEXT_LENGTH

    @property
    def timestamp_range_ms(self) -> tuple[int, int]:
        """TIMESTAMP only: the epoch milliseconds a value may be, inclusive: BigQuery's range.
        A snapshot time is further held to a window around now (``TableSchema``)."""
        return TIMESTAMP_MIN_MS, TIMESTAMP_MAX_MS
