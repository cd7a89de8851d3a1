"""What an ingestor writes to Kafka: the raw CoinCap record inside a small envelope.

The record goes in exactly as CoinCap sent it, so that a topic can be replayed into a corrected
transform; renaming and casting happen in the stream worker. The envelope says when CoinCap made
the snapshot (``source_timestamp``), when we fetched it, which poll it came with, and the version
of this format.

``ENVELOPE_FIELDS`` is the one definition of the envelope: the ingestors write it
(``PollContext.envelope``), the stream worker's Spark schema for reading it and the warehouse
columns it becomes (``shared.schemas``) are derived from it.

Making a message never raises, whatever the record holds. A record that cannot be a data
message as received (text UTF-8 cannot hold, such as a lone surrogate; nesting no encoder
should follow; more bytes than Kafka takes in one message) becomes a dead letter with the reason
(``record_or_dead_letter``), and a dead letter always encodes and always fits: JSON escapes keep
text faithful, and a record too large or too deep to carry whole travels as its size and a
prefix of its JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.record.default_records import DefaultRecordBatchBuilder

SCHEMA_VERSION = 1

RECORD_FIELD = "record"
"""The envelope field that holds the CoinCap record, as received."""

PRODUCER_MAX_REQUEST_BYTES = 1024 * 1024
"""The largest message the producers send (``max_request_size`` in ``shared.kafka``: Kafka's own
default, which the broker's ``message.max.bytes`` matches). A larger one would make ``send``
raise, so ``fits_in_kafka`` refuses it before it is sent."""

DEAD_LETTER_RAW_PREFIX_CHARS = 64 * 1024
"""How much of a record's JSON text a dead letter carries when the whole record cannot go."""

DEAD_LETTER_REASON_CHARS = 4096
"""The longest reason a dead letter carries; a longer one is cut, saying so."""

DEAD_LETTER_KEY_CHARS = 200
"""The longest key a dead letter carries: an id's own limit (``shared.schemas``)."""


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
    """``document`` as compact UTF-8 JSON; raises ``UnicodeEncodeError`` for text UTF-8 cannot
    hold, ``RecursionError`` for nesting past the encoder's limit, ``ValueError`` for a cycle."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _encode_escaped(document: dict[str, Any]) -> bytes | None:
    """``document`` as ASCII JSON, every other character a ``\\u`` escape, so a lone surrogate
    is written as it came (``"\\ud800"``); None when it nests past the encoder's limit."""
    try:
        return json.dumps(document, separators=(",", ":")).encode()
    except (RecursionError, ValueError):
        return None


def fits_in_kafka(key: bytes | None, value: bytes) -> bool:
    """Whether a message of ``key`` and ``value`` is within ``PRODUCER_MAX_REQUEST_BYTES`` as the
    producer counts it (its own estimate, batch header and record overhead included)."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
    return size <= PRODUCER_MAX_REQUEST_BYTES


def record_message(context: PollContext, topic: str, key: str, record: Any) -> OutgoingMessage:
    """A record for its data topic, keyed by its id so a key keeps one partition.

    Never raises: a record UTF-8 cannot hold as it came is written with JSON escapes, as anyone
    writing the topic could (and one nested past the encoder's limit as null). The ingestors call
    ``record_or_dead_letter`` instead, which refuses such records; this is for records already
    checked, and for tests writing topics.
    """
    document = {**context.envelope(), RECORD_FIELD: record}
    try:
        value = _encode(document)
    except (UnicodeEncodeError, RecursionError, ValueError):
        escaped = _encode_escaped(document) or _encode_escaped({**document, RECORD_FIELD: None})
        assert escaped is not None  # the envelope alone is flat and ours
        value = escaped
    return OutgoingMessage(
        topic=topic, key=key.encode("utf-8", "backslashreplace"), value=value, record_key=key
    )


def record_or_dead_letter(
    context: PollContext, topic: str, dead_letter_topic: str, key: str, record: Any
) -> tuple[OutgoingMessage, str | None]:
    """A valid record's data message; or, when it cannot be one as received, its dead letter and
    the reason. Never raises.

    It cannot be one when its JSON needs text UTF-8 cannot hold (a lone surrogate in a field no
    column declares, or in a field name), nests past the encoder's limit, or makes a message
    larger than Kafka takes (``fits_in_kafka``): ``send`` would raise for it, and every record
    queued behind it would wait.
    """
    encoded_key = key.encode("utf-8", "backslashreplace")
    try:
        value = _encode({**context.envelope(), RECORD_FIELD: record})
    except UnicodeEncodeError:
        reason = f"not valid Unicode: a lone surrogate in {_lone_surrogate_path(record)}"
    except (RecursionError, ValueError) as error:
        reason = f"the record cannot be written as JSON: {type(error).__name__}"
    else:
        if fits_in_kafka(encoded_key, value):
            return OutgoingMessage(topic, encoded_key, value, key), None
        reason = (
            f"the record makes a {len(value)}-byte message, more than Kafka takes "
            f"({PRODUCER_MAX_REQUEST_BYTES} bytes)"
        )
    return dead_letter_message(context, dead_letter_topic, key, record, reason), reason


def dead_letter_message(
    context: PollContext, topic: str, key: str | None, record: Any, reason: str
) -> OutgoingMessage:
    """An invalid record for the dead-letter topic, as received, with the reason.

    Never raises and always fits in Kafka. The record is under ``raw`` as received, with JSON
    escapes where UTF-8 cannot hold its text. When the message would be too large, or the record
    nests too deeply to encode, ``raw`` is null and ``raw_truncated`` says so:
    ``{"size_bytes": <its JSON text's length in bytes, ASCII-escaped>, "prefix": <the first
    DEAD_LETTER_RAW_PREFIX_CHARS characters of that text>}``. The key and the reason are cut to
    ``DEAD_LETTER_KEY_CHARS`` and ``DEAD_LETTER_REASON_CHARS``.
    """
    if len(reason) > DEAD_LETTER_REASON_CHARS:
        cut = "... (reason cut)"
        reason = reason[: DEAD_LETTER_REASON_CHARS - len(cut)] + cut
    encoded_key = key[:DEAD_LETTER_KEY_CHARS].encode("utf-8", "backslashreplace") if key else None
    head = {**context.envelope(), "stage": "ingest", "reason": reason}
    document = {**head, "raw": record}
    try:
        value: bytes | None = _encode(document)
    except (UnicodeEncodeError, RecursionError, ValueError):
        value = _encode_escaped(document)
    if value is None or not fits_in_kafka(encoded_key, value):
        prefix, size = json_text_prefix(record, DEAD_LETTER_RAW_PREFIX_CHARS)
        truncated = {"size_bytes": size, "prefix": prefix}
        value = _encode_escaped({**head, "raw": None, "raw_truncated": truncated})
        assert value is not None  # flat: the prefix is one string
    return OutgoingMessage(topic=topic, key=encoded_key, value=value, record_key=key)


def _lone_surrogate_path(record: Any) -> str:
    """Where the first text UTF-8 cannot hold is in ``record``: ``tokens.x[2]``, or a field
    name (``the field name '\\ud800'``). Walks without recursion."""
    pending: list[tuple[Any, str]] = [(record, "the record")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str) and not _is_utf8(item):
            return path
        if isinstance(item, dict):
            for name, member in reversed(item.items()):
                label = str(name)
                if not _is_utf8(label):
                    return f"the field name {label!r}"
                pending.append((member, label if path == "the record" else f"{path}.{label}"))
        elif isinstance(item, list):
            pending.extend(
                (member, f"{path}[{index}]") for index, member in reversed(list(enumerate(item)))
            )
    return "the record"


def lone_surrogate_at(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (JSON's ``"\\ud800"`` decodes to one),
    or None when ``text`` is valid Unicode and so UTF-8 can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def _is_utf8(text: str) -> bool:
    return lone_surrogate_at(text) is None


class _Text(str):
    """A piece of JSON text already written, among the values still to write."""


def json_text_prefix(value: Any, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``value`` as ASCII JSON text, and the whole text's
    length. Written without recursion, so any nesting the parser produced can be written."""
    pieces: list[str] = []
    kept = total = 0
    for piece in _json_pieces(value):
        total += len(piece)
        if kept < limit:
            pieces.append(piece[: limit - kept])
            kept += len(pieces[-1])
    return "".join(pieces), total


def _json_pieces(value: Any) -> Iterator[str]:
    """``value`` as ASCII JSON text, in pieces; containers are opened onto a stack, not recursed."""
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Text):
            yield item
        elif isinstance(item, dict):
            parts: list[Any] = [_Text("{")]
            for number, (name, member) in enumerate(item.items()):
                parts += [_Text(("," if number else "") + json.dumps(str(name)) + ":"), member]
            pending.extend(reversed([*parts, _Text("}")]))
        elif isinstance(item, list | tuple):
            parts = [_Text("[")]
            for number, member in enumerate(item):
                parts += [_Text(","), member] if number else [member]
            pending.extend(reversed([*parts, _Text("]")]))
        else:
            yield json.dumps(item, default=repr)
