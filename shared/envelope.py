"""What an ingestor writes to Kafka: the raw CoinCap record inside a small envelope.

The record goes in exactly as CoinCap sent it, so that a topic can be replayed into a corrected
transform; renaming and casting happen in the stream worker. The envelope says when CoinCap made
the snapshot (``source_timestamp``), when we fetched it, which poll it came with, and the version
of this format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SCHEMA_VERSION = 1


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
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "endpoint": self.endpoint,
            "poll_id": self.poll_id,
            "source_timestamp": self.source_timestamp_ms,
            "fetched_at": self.fetched_at_ms,
        }


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def record_message(context: PollContext, topic: str, key: str, record: Any) -> OutgoingMessage:
    """A valid record for its data topic, keyed by its id so a key keeps one partition."""
    return OutgoingMessage(
        topic=topic,
        key=key.encode(),
        value=_encode({**context.envelope(), "record": record}),
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
