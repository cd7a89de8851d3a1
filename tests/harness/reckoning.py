"""The fault suite's checker: the warehouse held against what the simulator served.

A record is (id, the answer's timestamp): what the worker's MERGE keys on. Every record the
simulator served in a 200 answer is owed to the warehouse exactly once, unless something
accounts for it: a record without an id, or with an absurd or poison value (the simulator's log
names those), goes to the dead-letter topic with the reason, a row the worker could not read goes to
the quarantine table, a record an ingestor had to drop is counted in its ``dropped_records``.
A body too large to read is refused, with no record served, and counted by the ingestors
(``coinstream_coincap_requests_total{status="too_large"}``). A page answered late (after a
``slow`` knob) may have been given up on by its client, so its records are not owed, but may be
there (once). Per key, rows must have been written in source-timestamp order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from tests.harness.broker import read_topic
from tests.harness.environment import TEST_STATE_DIR
from tests.harness.pipeline import Pipeline

REPORT = TEST_STATE_DIR / "chaos-report.jsonl"
TABLES = {"assets": ("assets", "id"), "exchanges": ("exchanges", "exchange_id")}


@dataclass
class Reckoning:
    """Records served against rows found; every field a count."""

    expected: int
    found: int
    lost: int
    duplicated: int
    unexpected: int
    out_of_order_keys: int
    served_without_id: int
    served_absurd: int
    served_poison: int
    dead_lettered: int
    dead_letters_without_reason: int
    quarantined: int
    counted_as_lost: int
    refused_too_large: int

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))

    def assert_exactly_once(self) -> None:
        """Nothing lost unless counted, nothing twice, nothing invented, nothing out of order."""
        assert self.lost <= self.counted_as_lost, self.as_dict()
        assert self.duplicated == 0, self.as_dict()
        assert self.unexpected == 0, self.as_dict()
        assert self.out_of_order_keys == 0, self.as_dict()
        # Each record served without an id or with an absurd or poison value is a dead letter
        # (nothing else dead-letters here), and each says why.
        assert self.dead_lettered == (
            self.served_without_id + self.served_absurd + self.served_poison
        ), self.as_dict()
        assert self.dead_letters_without_reason == 0, self.as_dict()


def served_pages(simulator_url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{simulator_url}/_simulator/served", timeout=60).json()
    assert body["forgotten"] == 0, "the simulator's served log overflowed; shorten the run"
    pages: list[dict[str, Any]] = body["pages"]
    return pages


def reckon(pipeline: Pipeline) -> Reckoning:
    """Hold the warehouse against the served log; call after ``pipeline.settle()``."""
    owed: set[tuple[str, str, int]] = set()
    late: set[tuple[str, str, int]] = set()
    without_id = 0
    absurd = poison = 0
    for page in served_pages(pipeline.simulator_url):
        absurd += len(page["absurd"])
        poison += len(page["poison"])
        for record_id in page["ids"]:
            if record_id is None:
                without_id += 1
                continue
            if record_id in page["absurd"] or record_id in page["poison"]:
                continue  # owed to the dead-letter topic; in the tables it is "unexpected"
            record = (page["endpoint"], record_id, page["timestamp"])
            (late if page["delayed"] else owed).add(record)
    found: Counter[tuple[str, str, int]] = Counter()
    out_of_order = 0
    for endpoint, (table, key) in TABLES.items():
        rows = pipeline.worker.query(
            f"SELECT `{key}` AS k, UNIX_MILLIS(source_timestamp) AS ts, "
            f"UNIX_MICROS(processing_timestamp) AS processed FROM `{{d}}.{table}`"
        )
        timelines: dict[str, list[tuple[int, int]]] = {}
        for row in rows:
            found[(endpoint, row["k"], int(row["ts"]))] += 1
            timelines.setdefault(row["k"], []).append((int(row["ts"]), int(row["processed"])))
        for timeline in timelines.values():
            processed = [stamp for _, stamp in sorted(timeline)]
            if any(later < earlier for earlier, later in itertools.pairwise(processed)):
                out_of_order += 1
    quarantined = pipeline.worker.query("SELECT COUNT(*) AS n FROM `{d}.quarantine`")[0]["n"]
    # Told how many to expect, read_topic reads again when a fresh client comes back short (a
    # loaded broker has been seen to describe the topic as unknown); a topic really short of
    # them still comes back short, and assert_exactly_once fails.
    dead = asyncio.run(
        read_topic(
            pipeline.settings.kafka_bootstrap_servers,
            pipeline.settings.topic_deadletter,
            expected=without_id + absurd + poison,
        )
    )
    ingestors = ("asset-ingestor", "exchange-ingestor")
    dropped = sum(int(pipeline.health(name).get("dropped_records", 0)) for name in ingestors)
    too_large = sum(
        pipeline.metric(name, "coinstream_coincap_requests_total", status="too_large")
        for name in ingestors
    )
    return Reckoning(
        expected=len(owed),
        found=len(owed & set(found)),
        lost=len(owed - set(found)),
        duplicated=sum(count - 1 for count in found.values() if count > 1),
        unexpected=len(set(found) - owed - late),
        out_of_order_keys=out_of_order,
        served_without_id=without_id,
        served_absurd=absurd,
        served_poison=poison,
        dead_lettered=len(dead),
        dead_letters_without_reason=sum(
            1 for message in dead if not json.loads(message.value or b"{}").get("reason")
        ),
        quarantined=int(quarantined),
        counted_as_lost=dropped,
        refused_too_large=int(too_large),
    )


def report(case: str, reckoning: Reckoning | None = None, **figures: Any) -> None:
    """Append one case's figures to ``REPORT`` (docs/reliability.md quotes them) and print."""
    line = json.dumps(
        {"case": case, **(reckoning.as_dict() if reckoning else {}), **figures}, default=str
    )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as file:
        file.write(line + "\n")
    print(f"\nchaos figures: {line}")
