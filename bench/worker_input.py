"""What the worker benchmark publishes: polls as the ingestors publish them, real-sized.

The records come from the CoinCap simulator's market (165 assets, 40 exchanges, CoinCap's
verbose decimal strings), wrapped by ``shared.envelope.record_message`` as the ingestors wrap
them, and sent with the ingestors' producer (``shared.kafka.create_producer``: acks=all,
idempotent, gzip), so the worker reads what it reads in production.

``prefill`` writes a backlog fast: every send is queued without waiting for the one before, and
acknowledgements are awaited a window of polls at a time, so the producer's pipeline stays
full instead of idling one round trip per poll.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from services.coincap_simulator.market import SimulatedMarket, load_universe
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.kafka import create_producer
from shared.settings import Settings

ASSETS_PER_POLL = 165
EXCHANGES_PER_POLL = 40
PREFILL_POLL_SPACING_MS = 5_000
"""A backlog of polls 5 s apart, as the ingestors make them against the simulator."""
PREFILL_WINDOW_POLLS = 20
"""Polls in flight at once while prefilling: enough to keep the producer's batches full."""
PREFILL_TICK_EVERY_POLLS = 100
"""Moving the simulated market costs 20 ms (decimal arithmetic for 205 records), four times
encoding a poll; the backlog moves it every this many polls. Each poll still has a source time
of its own, which is what makes its rows new to the warehouse."""


@dataclass(frozen=True)
class Poll:
    """One ingestor poll: its id and its messages."""

    poll_id: str
    messages: list[OutgoingMessage]


class PollMaker:
    """Polls of the simulated market, each at a tick of its own (so each has new values)."""

    def __init__(self, settings: Settings, seed: int = 14, tick_every_polls: int = 1) -> None:
        self.settings = settings
        self.tick_every_polls = tick_every_polls
        self._polls = 0
        self.market = SimulatedMarket(
            load_universe(), seed=seed, tick_seconds=1.0, started_at=time.time()
        )
        self._tick = 0

    def _advance(self) -> None:
        self._polls += 1
        if self._polls % self.tick_every_polls == 0:
            self._tick += 1
            self.market.advance_to(time.time() + self._tick)

    def _poll(
        self, endpoint: str, topic: str, key: str, records: list[dict[str, object]], source_ms: int
    ) -> Poll:
        context = PollContext(
            uuid.uuid4().hex, endpoint, "coincap-simulator", source_ms, int(time.time() * 1000)
        )
        messages = [record_message(context, topic, str(r[key]), r) for r in records]
        return Poll(context.poll_id, messages)

    def assets(self, source_ms: int) -> Poll:
        self._advance()
        return self._poll("assets", self.settings.topic_assets, "id", self.market.assets, source_ms)

    def exchanges(self, source_ms: int) -> Poll:
        self._advance()
        return self._poll(
            "exchanges",
            self.settings.topic_exchanges,
            "exchangeId",
            self.market.exchanges,
            source_ms,
        )


async def send_poll(producer: AIOKafkaProducer, poll: Poll) -> list[asyncio.Future[object]]:
    """Queue every message of ``poll``; the futures resolve when Kafka acknowledges them."""
    return [
        await producer.send(message.topic, message.value, key=message.key)
        for message in poll.messages
    ]


async def prefill(
    settings: Settings, records: int, progress: Callable[[int, float], None]
) -> tuple[int, float, float]:
    """Write at least ``records`` asset records (whole polls) to the asset topic.

    The polls' source times run up to now, ``PREFILL_POLL_SPACING_MS`` apart: the backlog a
    worker finds after being down while the ingestors kept polling. Returns the records
    written, the seconds it took and the mean message size in bytes.
    """
    maker = PollMaker(settings, tick_every_polls=PREFILL_TICK_EVERY_POLLS)
    polls = -(-records // ASSETS_PER_POLL)
    now_ms = int(time.time() * 1000)
    producer = create_producer(settings, "bench-prefill")
    await producer.start()
    started = time.monotonic()
    written = value_bytes = 0
    try:
        in_flight: deque[list[asyncio.Future[object]]] = deque()
        for number in range(polls):
            poll = maker.assets(now_ms - (polls - number) * PREFILL_POLL_SPACING_MS)
            in_flight.append(await send_poll(producer, poll))
            written += len(poll.messages)
            value_bytes += sum(len(message.value) for message in poll.messages)
            if len(in_flight) > PREFILL_WINDOW_POLLS:
                # A sliding window: the oldest poll's acknowledgements, while the rest fly.
                await asyncio.gather(*in_flight.popleft())
            if (number + 1) % 1000 == 0:
                progress(written, time.monotonic() - started)
        for futures in in_flight:
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return written, time.monotonic() - started, value_bytes / max(written, 1)
