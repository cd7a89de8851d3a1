"""Real messages for the producer benchmarks: simulator listings wrapped by our envelope code.

Kafka's producer tool and the bare aiokafka producer send these same bytes, so the limits are
measured with the record size, key and compressibility of what the ingestor sends.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from shared.coincap.client import CoinCapClient
from shared.envelope import OutgoingMessage, PollContext, record_message
from shared.settings import Settings


async def sample_polls(settings: Settings, topic: str, polls: int) -> list[list[OutgoingMessage]]:
    """``polls`` asset listings from the simulator as the asset ingestor would send them."""
    client = CoinCapClient.from_settings(settings)
    sampled: list[list[OutgoingMessage]] = []
    try:
        for _ in range(polls):
            result = await client.fetch_all("assets")
            context = PollContext(
                poll_id=uuid.uuid4().hex,
                endpoint="assets",
                source="coincap-simulator",
                source_timestamp_ms=result.timestamp_ms,
                fetched_at_ms=int(time.time() * 1000),
            )
            sampled.append(
                [record_message(context, topic, record["id"], record) for record in result.records]
            )
    finally:
        await client.aclose()
    return sampled


def average_value_bytes(messages: list[OutgoingMessage]) -> float:
    return sum(len(message.value) for message in messages) / len(messages)


def write_payload_file(messages: list[OutgoingMessage], path: Path) -> Path:
    """One message value per line, as ProducerPerformance's ``--payload-file`` reads them
    (compact JSON holds no raw newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(message.value for message in messages) + b"\n")
    return path
