"""The pipelined delivery's rules without a broker: what a producer session hands back when it
ends, and what the buffer may drop while polls are in flight."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka.producer import message_accumulator
from aiokafka.structs import TopicPartition

from services.ingestor.buffer import DeliveryBuffer, Dropped, PendingPoll
from services.ingestor.session import hold_leaderless_batches, settle
from shared.envelope import OutgoingMessage
from shared.kafka import create_producer
from shared.settings import Settings

TOPIC = "coincap.assets.v1"


def message(key: str, poll: int) -> OutgoingMessage:
    return OutgoingMessage(TOPIC, key.encode(), f"{key}@{poll}".encode(), key)


def poll_of(number: int, keys: list[str]) -> PendingPoll:
    return PendingPoll(f"poll-{number}", [message(key, number) for key in keys])


def answered(outcome: str) -> asyncio.Future[Any]:
    """A producer's answer for one record: stored, refused, or none yet."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if outcome == "stored":
        future.set_result(None)
    elif outcome == "refused":
        future.set_exception(RuntimeError("refused"))
    return future


def hand_over(poll: PendingPoll, position: int, outcomes: list[str]) -> None:
    poll.first_send_position = position
    poll.sends = [answered(outcome) for outcome in outcomes]
    poll.acknowledged = outcomes.count("stored")


async def test_a_session_hands_back_what_was_not_stored_in_order() -> None:
    older, newer = poll_of(1, ["a", "b", "c"]), poll_of(2, ["a", "b", "c"])
    hand_over(older, 0, ["stored", "refused", "unanswered"])
    hand_over(newer, 3, ["refused", "refused"])  # "c" of the newer poll was never handed over

    settlement = settle([older, newer])

    assert [m.value for m in older.undelivered] == [b"b@1", b"c@1"]
    assert [m.value for m in newer.undelivered] == [b"a@2", b"b@2", b"c@2"]
    assert older.sends == [] and older.acknowledged == 0 and older.waiting_records == 2
    assert settlement.refused == 3 and settlement.superseded == {}


async def test_a_record_with_a_newer_snapshot_stored_is_not_sent_after_it() -> None:
    # Kafka refused "a" of the older poll but stored "a" of the newer one: sending the older
    # snapshot again would put it after the newer one, so it is handed back as superseded.
    older, newer = poll_of(1, ["a", "b"]), poll_of(2, ["a", "b"])
    hand_over(older, 0, ["refused", "refused"])
    hand_over(newer, 2, ["stored", "refused"])

    settlement = settle([older, newer])

    assert [m.value for m in older.undelivered] == [b"b@1"]
    assert [m.value for m in newer.undelivered] == [b"b@2"]
    assert {
        poll_id: [m.value for m in lost] for poll_id, lost in settlement.superseded.items()
    } == {"poll-1": [b"a@1"]}


async def test_records_without_a_key_never_supersede_each_other() -> None:
    keyless = [OutgoingMessage("dead", None, b"x", None), OutgoingMessage("dead", None, b"y", None)]
    poll = PendingPoll("poll-1", keyless)
    hand_over(poll, 0, ["refused", "stored"])

    settlement = settle([poll])

    assert [m.value for m in poll.undelivered] == [b"x"] and settlement.superseded == {}


async def test_overflow_drops_the_oldest_waiting_poll_never_one_in_flight() -> None:
    buffer = DeliveryBuffer(max_records=6)
    first, second, third = poll_of(1, ["a", "b"]), poll_of(2, ["a", "b"]), poll_of(3, ["a", "b"])
    for each in (first, second, third):
        assert buffer.add(each) == []
    hand_over(first, 0, ["unanswered", "unanswered"])
    hand_over(second, 2, ["unanswered"])  # partly handed over

    fourth = poll_of(4, ["a", "b"])
    assert buffer.add(fourth) == [Dropped(third, "buffer_full")]
    assert buffer.polls_in_flight == 2 and buffer.records == 6
    assert buffer.next_to_hand_over() is second


async def test_delivered_polls_leave_only_from_the_front() -> None:
    buffer = DeliveryBuffer(max_records=100)
    first, second = poll_of(1, ["a"]), poll_of(2, ["a"])
    buffer.add(first)
    buffer.add(second)
    hand_over(first, 0, ["unanswered"])
    hand_over(second, 1, ["stored"])
    buffer.release_delivered()
    assert buffer.polls == 2  # the newer one stays while the older one may be sent again

    first.sends[0].set_result(None)
    first.acknowledged = 1
    buffer.release_delivered()
    assert buffer.polls == 0 and buffer.records == 0


async def test_a_batch_for_a_leaderless_partition_is_held_not_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """aiokafka fails a batch left an hour without a partition leader (``request_timeout_ms``
    is 10 s); the ingestors' producer holds it, so a retry that may already be in Kafka is
    never failed and sent again by the next producer under a new id."""
    settings = Settings(_env_file=None)
    partition = TopicPartition(TOPIC, 0)
    plain = create_producer(settings, client_id="plain")
    held = create_producer(settings, client_id="held")
    hold_leaderless_batches(held)
    answers = {}
    for producer in (plain, held):
        answers[producer] = await producer._message_accumulator.add_message(
            partition, b"bitcoin", b"{}", timeout=1
        )
    an_hour_later = time.monotonic() + 3600
    monkeypatch.setattr(message_accumulator.time, "monotonic", lambda: an_hour_later)

    # The producers have no metadata yet: the partition has no leader in their eyes.
    assert plain._message_accumulator._batches[partition][0].expired()
    nodes, leaderless = held._message_accumulator.drain_by_nodes(ignore_nodes=set())
    assert leaderless and not nodes
    assert not answers[held].done()
    assert len(held._message_accumulator._batches[partition]) == 1
    monkeypatch.undo()
    for producer in (plain, held):
        await producer.stop()  # never started: nothing to deliver, nothing waits
