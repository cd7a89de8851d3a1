"""Making Kafka messages never raises, whatever a record holds, and every message fits in Kafka.

A record that cannot be a data message as received becomes a dead letter with the reason; a dead
letter keeps the record faithfully (JSON escapes) or, when it cannot carry it whole, says so with
the record's size and a prefix of its text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from shared.envelope import (
    DEAD_LETTER_KEY_CHARS,
    DEAD_LETTER_RAW_PREFIX_CHARS,
    DEAD_LETTER_REASON_CHARS,
    PRODUCER_MAX_REQUEST_BYTES,
    OutgoingMessage,
    PollContext,
    dead_letter_message,
    fits_in_kafka,
    json_text_prefix,
    record_message,
    record_or_dead_letter,
)
from shared.kafka import create_producer
from shared.settings import Settings

CONTEXT = PollContext("poll-1", "assets", "coincap-simulator", 1_800_000_000_000, 1_800_000_000_050)
BITCOIN = {"id": "bitcoin", "rank": "1", "name": "Bitcoin", "priceUsd": "96243.89"}


def nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def compact(value: Any) -> str:
    """JSON text as the messages write it: ASCII, no spaces."""
    return json.dumps(value, separators=(",", ":"))


def decoded(message: OutgoingMessage) -> dict[str, Any]:
    """The message value as a consumer reads it: strict UTF-8, then JSON."""
    document: dict[str, Any] = json.loads(message.value.decode("utf-8"))
    return document


def test_a_sound_record_is_its_data_message() -> None:
    message, reason = record_or_dead_letter(CONTEXT, "data", "dead", "bitcoin", BITCOIN)
    assert reason is None
    assert (message.topic, message.key, message.record_key) == ("data", b"bitcoin", "bitcoin")
    assert decoded(message)["record"] == BITCOIN
    assert message == record_message(CONTEXT, "data", "bitcoin", BITCOIN)


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({**BITCOIN, "tokens": {"ethereum": ["0x\ud800"]}}, "tokens.ethereum[0]"),
        ({**BITCOIN, "tokens": {"\udc00ethereum": ["0x0"]}}, "the field name '\\udc00ethereum'"),
    ],
)
def test_a_record_utf8_cannot_hold_is_dead_lettered_faithfully(
    record: dict[str, Any], where: str
) -> None:
    message, reason = record_or_dead_letter(CONTEXT, "data", "dead", "bitcoin", record)
    assert message.topic == "dead"
    assert reason == f"not valid Unicode: a lone surrogate in {where}"
    letter = decoded(message)
    assert letter["reason"] == reason and letter["stage"] == "ingest"
    assert letter["raw"] == record  # the "\ud800" escape reads back as the same surrogate


def test_a_dead_letter_of_text_utf8_cannot_hold_still_encodes() -> None:
    record = {**BITCOIN, "name": "\ud800"}
    message = dead_letter_message(CONTEXT, "dead", "bit\udfffcoin", record, "name: lone surrogate")
    assert decoded(message)["raw"] == record
    assert message.key == b"bit\\udfffcoin"


def test_record_message_never_raises_and_escapes_what_utf8_cannot_hold() -> None:
    """For records already checked, and for tests writing a topic as anyone could."""
    record = {**BITCOIN, "name": "\ud800"}
    message = record_message(CONTEXT, "data", "bitcoin", record)
    assert b"\\ud800" in message.value
    assert decoded(message)["record"] == record


def test_a_record_larger_than_kafka_takes_is_dead_lettered_with_its_size_and_a_prefix() -> None:
    record = {**BITCOIN, "tokens": {"padding": "x" * 1_100_000}}
    message, reason = record_or_dead_letter(CONTEXT, "data", "dead", "bitcoin", record)
    text = compact(record)
    assert message.topic == "dead"
    assert reason is not None and "more than Kafka takes (1048576 bytes)" in reason
    assert fits_in_kafka(message.key, message.value)
    letter = decoded(message)
    assert letter["raw"] is None
    assert letter["raw_truncated"] == {
        "size_bytes": len(text),
        "prefix": text[:DEAD_LETTER_RAW_PREFIX_CHARS],
    }


def test_a_dead_letter_always_fits_and_cuts_key_and_reason() -> None:
    record = {"id": "b" * 300_000, "explorer": "https://" + "x" * 2_000_000}
    message = dead_letter_message(CONTEXT, "dead", record["id"], record, "r" * 100_000)
    assert fits_in_kafka(message.key, message.value)
    assert message.key == b"b" * DEAD_LETTER_KEY_CHARS
    letter = decoded(message)
    assert len(letter["reason"]) == DEAD_LETTER_REASON_CHARS
    assert letter["reason"].endswith("... (reason cut)")
    assert letter["raw_truncated"]["size_bytes"] == len(compact(record))
    assert letter["raw_truncated"]["prefix"].startswith('{"id":"bbbb')


def test_a_record_nested_past_the_encoders_limit_is_dead_lettered_as_text() -> None:
    record = {"id": "deep", "tokens": nested_list(100_000)}
    message, reason = record_or_dead_letter(CONTEXT, "data", "dead", "deep", record)
    assert message.topic == "dead"
    assert reason == "the record cannot be written as JSON: RecursionError"
    truncated = decoded(message)["raw_truncated"]
    assert truncated["size_bytes"] == len('{"id":"deep","tokens":}') + 2 * 100_000
    assert truncated["prefix"].startswith('{"id":"deep","tokens":[[[[')


def test_json_text_prefix_writes_what_json_dumps_writes() -> None:
    value = {"a": [1, 2.5, None, True, {"b": "\u00fc\ud800"}], "c": {}, "d": [], "e": "x"}
    text = compact(value)
    assert json_text_prefix(value, 10_000) == (text, len(text))
    assert json_text_prefix(value, 7) == (text[:7], len(text))


async def test_the_size_check_is_the_producers_own() -> None:
    """A message ``fits_in_kafka`` accepts is one the producer sends; one byte more it refuses
    (so ``send`` can never raise for a record's size)."""
    producer = create_producer(Settings(_env_file=None), client_id="test")
    key = b"bitcoin"
    empty = record_message(CONTEXT, "data", "bitcoin", {"padding": ""}).value
    room = PRODUCER_MAX_REQUEST_BYTES - len(empty)
    largest = record_message(CONTEXT, "data", "bitcoin", {"padding": "x" * room}).value
    while not fits_in_kafka(key, largest):
        largest = largest.replace(b"x", b"", 1)
    one_more = largest.replace(b"x", b"xx", 1)

    assert not fits_in_kafka(key, one_more)
    producer._serialize(key, largest, [])  # the producer's own size check: passes
    with pytest.raises(MessageSizeTooLargeError):
        producer._serialize(key, one_more, [])
