"""What an ingestor writes to Kafka: the raw CoinCap record inside a small envelope.

The record goes in exactly as CoinCap sent it, so that a topic can be replayed into a corrected
transform; renaming and casting happen in the stream worker. The envelope says when CoinCap made
the snapshot (``source_timestamp``), when we fetched it, which poll it came with, and the version
of this format.

``ENVELOPE_FIELDS`` is the one definition of the envelope: the ingestors write it
(``PollContext.envelope``), the stream worker's Spark schema for reading it and the warehouse
columns it becomes (``shared.schemas``) are derived from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

SCHEMA_VERSION = 1

RECORD_FIELD = "record"
"""The envelope field that holds the CoinCap record, as received."""


@dataclass(frozen=True)
class EnvelopeField:
    """One field of the envelope around every record message."""

    name: str
    json_type: Literal["integer", "string"]
    description: str
    column_type: Literal["STRING", "TIMESTAMP"] | None = None
    """The warehouse column this field becomes (epoch milliseconds become a TIMESTAMP); None
    when the tables do not keep it."""
    required: bool = False
    """A message without it cannot be placed in time, so it goes to quarantine."""


ENVELOPE_FIELDS: tuple[EnvelopeField, ...] = (
    EnvelopeField("schema_version", "integer", "Version of this message format."),
    EnvelopeField(
        "source",
        "string",
        "`coincap` or `coincap-simulator`: simulated data says so all the way down.",
    ),
    EnvelopeField(
        "endpoint",
        "string",
        "The CoinCap endpoint fetched: `assets`, `exchanges`, or `history` (a backfill).",
    ),
    EnvelopeField(
        "source_timestamp",
        "integer",
        "When CoinCap produced the response (its `timestamp` field); for a history point, "
        "the point's time.",
        column_type="TIMESTAMP",
        required=True,
    ),
    EnvelopeField(
        "fetched_at",
        "integer",
        "When the ingestor received the response.",
        column_type="TIMESTAMP",
    ),
    EnvelopeField(
        "poll_id",
        "string",
        "Identifier of the poll that fetched the record.",
        column_type="STRING",
    ),
)


@dataclass(frozen=True)
class OutgoingMessage:
    topic: str
    key: bytes | None
    value: bytes
    record_key: str | None
    """The record's id, for logs; None when the record has none."""


@dataclass(frozen=True)
class PollContext:
    """What every message of one poll shares."""

    poll_id: str
    endpoint: str
    source: str
    """``coincap`` or ``coincap-simulator``: simulated data says so all the way down."""
    source_timestamp_ms: int
    fetched_at_ms: int

    def envelope(self) -> dict[str, Any]:
        """The envelope fields of ``ENVELOPE_FIELDS``, in that order (a unit test holds them
        equal)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "endpoint": self.endpoint,
            "source_timestamp": self.source_timestamp_ms,
            "fetched_at": self.fetched_at_ms,
            "poll_id": self.poll_id,
        }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def record_message(context: PollContext, topic: str, key: str, record: Any) -> OutgoingMessage:
    """A valid record for its data topic, keyed by its id so a key keeps one partition."""
    return OutgoingMessage(
        topic=topic,
        key=key.encode(),
        value=_encode({**context.envelope(), RECORD_FIELD: record}),
        record_key=key,
    )


def dead_letter_message(
    context: PollContext, topic: str, key: str | None, record: Any, reason: str
) -> OutgoingMessage:
    """An invalid record for the dead-letter topic, as received, with the reason."""
    return OutgoingMessage(
        topic=topic,
        key=key.encode() if key else None,
        value=_encode({**context.envelope(), "stage": "ingest", "reason": reason, "raw": record}),
        record_key=key,
    )
