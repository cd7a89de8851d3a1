"""No input can stop an ingestor: both real ingestor loops, running as the service runs them,
against the simulator process serving poison, and the real broker.

The simulator's ``poison`` knob serves, beside healthy records, an exchange ``updated`` of
9999999999999999, lone surrogate escapes, a 2 MB URL, a record over Kafka's 1 MiB, a field nested
200 deep and a 300-character id; ``poison_page`` then spoils two whole pages (a timestamp of 1e16,
JSON nested 100,000 deep). Healthy records keep reaching their topics poll after poll, each
poison record reaches the dead-letter topic with its reason, and neither ingestor leaves RUNNING.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from services.coincap_simulator.faults import POISON_VALUES
from services.ingestor.loop import Ingestor
from services.ingestor.models import IngestorHealth
from services.ingestor.specs import ingestor_spec
from shared.coincap.client import CoinCapClient
from shared.settings import Settings
from tests.harness.broker import read_topic
from tests.harness.environment import SIMULATOR_PORT, TEST_ENVIRONMENT
from tests.harness.processes import settings_from

SIMULATOR = f"http://127.0.0.1:{SIMULATOR_PORT}"
POISONED_POLLS = 3
"""Polls of each listing that carry poison records."""
HEALTHY_POLLS_AFTER = 3
"""Polls of each listing that must arrive after the last poison."""

Listing = Literal["assets", "exchanges"]
LISTINGS: tuple[Listing, ...] = ("assets", "exchanges")

REASON_STARTS: dict[Listing, list[str]] = {
    "assets": [
        "name: not valid Unicode: a lone surrogate",
        "explorer: 2000025 characters, more than the limit of 2048",
        "the record makes a ",
        "record nested more than 32 levels deep",
        "id: 307 characters, more than the limit of 200",
        "not valid Unicode: a lone surrogate in the field name",
    ],
    "exchanges": [
        "updated: 9999999999999999 is outside BigQuery's TIMESTAMP range",
        "name: not valid Unicode: a lone surrogate",
        "exchangeUrl: 2000025 characters, more than the limit of 2048",
        "the record makes a ",
        "record nested more than 32 levels deep",
        "exchangeId: 307 characters, more than the limit of 200",
    ],
}
"""Per listing, the reason each poison value is dead-lettered with (``POISON_VALUES``)."""


def clear_faults() -> None:
    httpx.delete(f"{SIMULATOR}/_simulator/faults").raise_for_status()


def set_fault(**knob: Any) -> None:
    httpx.post(f"{SIMULATOR}/_simulator/faults", json=knob).raise_for_status()


def knobs_left() -> list[dict[str, Any]]:
    faults: list[dict[str, Any]] = httpx.get(f"{SIMULATOR}/_simulator/faults").json()["faults"]
    return faults


def listing_size(endpoint: Listing) -> int:
    return len(httpx.get(f"{SIMULATOR}/v3/{endpoint}?limit=2000").json()["data"])


def queue_poison() -> None:
    clear_faults()
    for endpoint in LISTINGS:
        set_fault(mode="poison", count=POISONED_POLLS, endpoint=endpoint)
    set_fault(mode="poison_page", count=1, poison="timestamp", endpoint="assets")
    set_fault(mode="poison_page", count=1, poison="nesting", endpoint="exchanges")


@pytest.fixture
def poison_settings(stack_settings: Settings, simulator: str, tmp_path: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings_from(
        {
            **TEST_ENVIRONMENT,
            "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
            "COINSTREAM_TOPIC_ASSETS": f"test.assets.{suffix}",
            "COINSTREAM_TOPIC_EXCHANGES": f"test.exchanges.{suffix}",
            "COINSTREAM_TOPIC_DEADLETTER": f"test.deadletter.{suffix}",
            "COINSTREAM_POLL_INTERVAL_SECONDS": "0.5",
            "COINSTREAM_INGEST_SPOOL_DIR": str(tmp_path / "spool"),
        }
    )


async def test_poison_is_dead_lettered_while_healthy_records_flow_and_both_stay_running(
    poison_settings: Settings,
) -> None:
    settings = poison_settings
    await asyncio.to_thread(queue_poison)
    ingestors: dict[Listing, Ingestor] = {}
    clients: list[CoinCapClient] = []
    for endpoint in LISTINGS:
        spec, _ = ingestor_spec(settings, endpoint)
        client = CoinCapClient.from_settings(settings)  # as the service makes it
        clients.append(client)
        ingestors[endpoint] = Ingestor(spec, settings, client)
    runs = [asyncio.create_task(ingestor.run()) for ingestor in ingestors.values()]
    states: Counter[str] = Counter()
    wanted: dict[Listing, int] = {}
    """Per listing, the successful polls to wait for: those made when the last knob was taken,
    and HEALTHY_POLLS_AFTER more."""
    try:
        async with asyncio.timeout(120):
            while not wanted or any(
                ingestors[endpoint].polls_succeeded < polls for endpoint, polls in wanted.items()
            ):
                for ingestor in ingestors.values():
                    states[IngestorHealth.of(ingestor).state] += 1
                if not wanted and not await asyncio.to_thread(knobs_left):
                    wanted = {
                        endpoint: ingestor.polls_succeeded + HEALTHY_POLLS_AFTER
                        for endpoint, ingestor in ingestors.items()
                    }
                await asyncio.sleep(0.05)
    finally:
        for ingestor in ingestors.values():
            await ingestor.stop()
        await asyncio.gather(*runs)
        for client in clients:
            await client.aclose()

    assert set(states) == {"RUNNING"}, states
    for ingestor in ingestors.values():
        health = IngestorHealth.of(ingestor)
        assert health.state == "RUNNING"
        assert health.dropped_records == 0 and health.buffered_records == 0
        # The poison page was one failed poll, refused as malformed; the next went through.
        assert health.polls_failed == 1
        assert "malformed" in str(health.last_error)

    dead = [
        json.loads(message.value)
        for message in await read_topic(
            settings.kafka_bootstrap_servers,
            settings.topic_deadletter,
            expected=POISONED_POLLS * sum(len(POISON_VALUES[name]) for name in LISTINGS),
        )
        if message.value is not None
    ]
    for endpoint, ingestor in ingestors.items():
        letters = [letter for letter in dead if letter["endpoint"] == endpoint]
        assert len(letters) == POISONED_POLLS * len(POISON_VALUES[endpoint])
        by_poll: dict[str, list[str]] = {}
        for letter in letters:
            by_poll.setdefault(letter["poll_id"], []).append(letter["reason"])
        assert len(by_poll) == POISONED_POLLS
        for reasons in by_poll.values():
            # One letter per poison value, each with its reason (partitions keep no common order).
            starts = REASON_STARTS[endpoint]
            matched = Counter(
                next((start for start in starts if reason.startswith(start)), reason)
                for reason in reasons
            )
            assert matched == Counter(REASON_STARTS[endpoint]), reasons

        # Healthy records reached the data topic poll after poll, each poll whole.
        topic = settings.topic_assets if endpoint == "assets" else settings.topic_exchanges
        records = [
            json.loads(message.value)
            # Each successful poll published at least one record: a read that comes back shorter
            # than that is made again (a fresh client has been seen to find the topic empty).
            for message in await read_topic(
                settings.kafka_bootstrap_servers, topic, expected=ingestor.polls_succeeded
            )
            if message.value is not None
        ]
        per_poll = Counter(record["poll_id"] for record in records)
        assert len(per_poll) == ingestor.polls_succeeded >= POISONED_POLLS + HEALTHY_POLLS_AFTER
        listing = await asyncio.to_thread(listing_size, endpoint)
        for poll_id, count in per_poll.items():
            poisoned = len(POISON_VALUES[endpoint]) if poll_id in by_poll else 0
            assert count == listing - poisoned, (poll_id, count)
