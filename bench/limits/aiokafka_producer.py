"""A bare aiokafka producer with the ingestor's settings: what the client alone can deliver.

Two ways of sending the same messages: ``per_poll`` waits for every acknowledgement of one
poll before sending the next, as a sender with one poll in flight does; ``pipelined`` never
waits, so the client keeps as many batches in flight as it allows.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from shared.envelope import OutgoingMessage
from shared.kafka import create_producer
from shared.settings import Settings

PIPELINE_PRUNE_EVERY = 10_000


async def per_poll(
    settings: Settings, topic: str, polls: list[list[OutgoingMessage]], seconds: float
) -> float:
    """Records acknowledged per second, sending one poll and awaiting its acks at a time."""
    producer = create_producer(settings, client_id="bench-aiokafka-per-poll")
    await producer.start()
    acknowledged = 0
    try:
        started = time.monotonic()
        for poll in itertools.cycle(polls):
            if time.monotonic() - started >= seconds:
                break
            futures = [
                await producer.send(topic, message.value, key=message.key) for message in poll
            ]
            await asyncio.gather(*futures)
            acknowledged += len(poll)
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    return acknowledged / elapsed


async def pipelined(
    settings: Settings, topic: str, polls: list[list[OutgoingMessage]], seconds: float
) -> float:
    """Records acknowledged per second, sending for ``seconds`` without waiting, then until
    the last is acknowledged (that wait is in the time)."""
    producer = create_producer(settings, client_id="bench-aiokafka-pipelined")
    await producer.start()
    messages = itertools.cycle([message for poll in polls for message in poll])
    in_flight: list[asyncio.Future[Any]] = []
    acknowledged = 0
    try:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            for message in itertools.islice(messages, PIPELINE_PRUNE_EVERY):
                in_flight.append(await producer.send(topic, message.value, key=message.key))
            done = [future for future in in_flight if future.done()]
            for future in done:
                future.result()  # a failed send fails the benchmark
            acknowledged += len(done)
            in_flight = [future for future in in_flight if not future.done()]
        await asyncio.gather(*in_flight)
        acknowledged += len(in_flight)
        elapsed = time.monotonic() - started
    finally:
        await producer.stop()
    return acknowledged / elapsed
