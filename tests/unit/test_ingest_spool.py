"""The ingestor's durable spool without a broker: polls kept in order, trimmed and rewritten,
durable across a SIGKILL, bounded (the overflow counted), a file that cannot be read set aside,
one process per file; and the delivery that writes it: what a restart finds, what a stop with
Kafka away keeps."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.ingestor.buffer import DeliveryBuffer, Dropped, PendingPoll
from services.ingestor.delivery import KafkaDelivery
from services.ingestor.specs import IngestorSpec
from services.ingestor.spool import (
    SPOOL_FORMAT,
    PollSpool,
    SpooledPoll,
    SpoolInUse,
    message_bytes,
)
from shared.envelope import OutgoingMessage
from shared.settings import PROJECT_ROOT, Settings

TOPIC = "coincap.assets.v1"
KEYS = ["bitcoin", "ethereum", "tether"]


def message(key: str, poll: int) -> OutgoingMessage:
    return OutgoingMessage(TOPIC, key.encode(), f'{{"id":"{key}","poll":{poll}}}'.encode(), key)


def spooled(number: int, keys: list[str] = KEYS) -> SpooledPoll:
    return SpooledPoll(f"poll-{number}", tuple(message(key, number) for key in keys))


def reopened(path: Path) -> list[SpooledPoll]:
    spool = PollSpool(path)
    try:
        recovery = spool.open()
        assert recovery.set_aside_to is None, recovery
        return [SpooledPoll(poll.poll_id, tuple(poll.messages)) for poll in recovery.polls]
    finally:
        spool.close()


def test_polls_come_back_in_the_order_written_with_every_field(tmp_path: Path) -> None:
    path = tmp_path / "asset-ingestor.sqlite3"
    spool = PollSpool(path)
    assert spool.open().polls == []
    keyless = OutgoingMessage("coincap.deadletter.v1", None, b'{"reason":"no id"}', None)
    polls = [spooled(3), SpooledPoll("poll-1", (keyless, message("bitcoin", 1))), spooled(2)]
    for poll in polls:
        spool.write(add=poll)
    assert (spool.polls, spool.records) == (3, 8)
    assert spool.bytes == sum(message_bytes(poll.messages) for poll in polls)
    spool.close()

    assert reopened(path) == polls


def test_removed_polls_go_and_rewritten_polls_keep_their_place(tmp_path: Path) -> None:
    path = tmp_path / "asset-ingestor.sqlite3"
    spool = PollSpool(path)
    spool.open()
    for number in range(1, 5):
        spool.write(add=spooled(number))
    # Poll 1 partly acknowledged when its session ended; 2 delivered; 3 wholly acknowledged.
    spool.write(
        remove=["poll-2"],
        replace={"poll-1": [message("tether", 1)], "poll-3": [], "poll-9": [message("x", 9)]},
    )
    assert (spool.polls, spool.records) == (2, 4)
    spool.close()

    assert reopened(path) == [SpooledPoll("poll-1", (message("tether", 1),)), spooled(4)]


def test_a_poll_written_is_there_after_a_sigkill(tmp_path: Path) -> None:
    """``write`` returns once the poll is on disk: a process killed right after loses none."""
    path = tmp_path / "asset-ingestor.sqlite3"
    writer = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from services.ingestor.spool import PollSpool, SpooledPoll
        from shared.envelope import OutgoingMessage
        spool = PollSpool(Path({str(path)!r}))
        spool.open()
        for number in range(50):
            messages = tuple(
                OutgoingMessage("t", f"k{{key}}".encode(), b"v" * 500, f"k{{key}}")
                for key in range(100)
            )
            spool.write(add=SpooledPoll(f"poll-{{number}}", messages))
        print("written", flush=True)
        time.sleep(60)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", writer], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "written"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        process.kill()
        process.wait(10)

    polls = reopened(path)
    assert [poll.poll_id for poll in polls] == [f"poll-{number}" for number in range(50)]
    assert all(len(poll.messages) == 100 for poll in polls)


def test_a_second_process_on_the_same_spool_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "asset-ingestor.sqlite3"
    first = PollSpool(path)
    first.open()
    first.write(add=spooled(1))
    with pytest.raises(SpoolInUse, match="COINSTREAM_INGEST_SPOOL_DIR"):
        PollSpool(path).open()
    first.close()
    assert reopened(path) == [spooled(1)]


@pytest.mark.parametrize("damage", ["garbage", "other_format", "other_application"])
def test_a_file_that_cannot_be_read_is_set_aside_and_a_fresh_spool_started(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "asset-ingestor.sqlite3"
    if damage == "garbage":
        path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    else:
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE polls (x)")
        if damage == "other_format":
            connection.execute("PRAGMA application_id=0x636F696E")
            connection.execute(f"PRAGMA user_version={SPOOL_FORMAT + 1}")
        connection.commit()
        connection.close()
    original = path.read_bytes()

    spool = PollSpool(path)
    recovery = spool.open()

    assert recovery.polls == []
    assert recovery.set_aside_to is not None and recovery.set_aside_reason
    assert recovery.set_aside_to.read_bytes() == original, "kept as found, for a look"
    assert recovery.set_aside_to.parent == tmp_path
    if damage == "other_format":
        assert f"format {SPOOL_FORMAT + 1}" in recovery.set_aside_reason
    spool.write(add=spooled(1))
    spool.close()
    assert reopened(path) == [spooled(1)]


def test_the_buffer_drops_the_oldest_waiting_poll_past_the_byte_bound() -> None:
    polls = [PendingPoll(poll.poll_id, list(poll.messages)) for poll in map(spooled, range(4))]
    size = polls[0].held_bytes
    buffer = DeliveryBuffer(max_records=100, max_bytes=3 * size)
    for poll in polls[:3]:
        assert buffer.add(poll) == []
    assert buffer.add(polls[3]) == [Dropped(polls[1], "spool_full")]
    assert buffer.bytes == 3 * size and buffer.polls == 3


# --- the delivery that writes the spool ---------------------------------------------------------


def settings(tmp_path: Path, **values: Any) -> Settings:
    """No broker answers on port 9: nothing is ever acknowledged."""
    return Settings(
        _env_file=None,
        kafka_bootstrap_servers="127.0.0.1:9",
        ingest_spool_dir=tmp_path,
        **values,
    )


def pending(number: int, padding: int = 0) -> PendingPoll:
    return PendingPoll(
        f"poll-{number}",
        [
            OutgoingMessage(TOPIC, key.encode(), b"x" * padding + f"{number}".encode(), key)
            for key in KEYS
        ],
    )


def set_aside_files(folder: Path, name: str) -> list[Path]:
    return list(folder.glob(f"{name}.set-aside-*.sqlite3"))


def sample(name: str, ingestor: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"ingestor": ingestor, **labels}) or 0.0


async def test_a_restarted_delivery_queues_what_the_spool_holds_first(tmp_path: Path) -> None:
    spec = IngestorSpec("spool-restart", "assets", "id", TOPIC)
    first = KafkaDelivery(spec, settings(tmp_path))
    for number in range(5):
        await first.queue(pending(number))
    assert first.spool.file is not None and first.spool.file.records == 15
    # A kill: nothing more happens in this process's delivery; its lock goes with the process.
    first.spool.file.close()
    resent_before = sample("coinstream_records_resent_total", spec.name)

    second = KafkaDelivery(spec, settings(tmp_path))
    second.open_spool()
    await second.queue(pending(5))

    assert second.buffer.records == 18 and second.dropped_records == 0
    assert sample("coinstream_records_resent_total", spec.name) - resent_before == 15
    assert sample("coinstream_ingest_spool_recovered_records_total", spec.name) >= 15
    queued = second.buffer.take_all()
    assert [poll.poll_id for poll in queued] == [f"poll-{number}" for number in range(6)]
    assert [poll.undelivered for poll in queued[:5]] == [pending(n).undelivered for n in range(5)]
    await second.close_spool()


async def test_overflow_past_the_spool_bound_is_counted_and_leaves_the_spool(
    tmp_path: Path,
) -> None:
    spec = IngestorSpec("spool-overflow", "assets", "id", TOPIC)
    padding = 400 * 1024  # three records of 400 KiB: 1.2 MiB a poll
    delivery = KafkaDelivery(spec, settings(tmp_path, ingest_spool_max_bytes=4 * 1024 * 1024))
    for number in range(5):
        await delivery.queue(pending(number, padding))
    # Four polls would pass 4 MiB: each new one beyond three drops the oldest not started.
    assert delivery.dropped_records == 6
    assert list(delivery.dropped_poll_ids) == ["poll-1", "poll-2"]
    assert sample("coinstream_records_dropped_total", spec.name, reason="spool_full") == 6
    await delivery.close_spool()

    held = reopened(tmp_path / f"{spec.name}.sqlite3")
    assert [poll.poll_id for poll in held] == ["poll-0", "poll-3", "poll-4"]


async def test_a_stop_with_kafka_away_keeps_the_polls_in_the_spool_not_lost(
    tmp_path: Path,
) -> None:
    spec = IngestorSpec("spool-stop", "assets", "id", TOPIC)
    delivery = KafkaDelivery(spec, settings(tmp_path, shutdown_flush_seconds=0.5))
    for number in range(3):
        await delivery.queue(pending(number))

    await delivery.flush_before_exit()
    await delivery.close_spool()

    assert delivery.dropped_records == 0, "spooled polls are kept for the next start, not lost"
    held = reopened(tmp_path / f"{spec.name}.sqlite3")
    assert [poll.poll_id for poll in held] == ["poll-0", "poll-1", "poll-2"]


async def test_a_spool_set_aside_is_counted_and_the_delivery_goes_on(tmp_path: Path) -> None:
    spec = IngestorSpec("spool-set-aside", "assets", "id", TOPIC)
    (tmp_path / f"{spec.name}.sqlite3").write_bytes(b"not a database at all" * 100)
    delivery = KafkaDelivery(spec, settings(tmp_path))

    await delivery.queue(pending(1))

    assert sample("coinstream_ingest_spool_set_aside_total", spec.name) == 1
    assert delivery.spool.file is not None and delivery.spool.file.records == 3
    assert delivery.spool.problem is None
    assert len(set_aside_files(tmp_path, spec.name)) == 1
    await delivery.close_spool()


async def test_without_a_spool_polls_are_delivered_from_memory_and_health_says_so(
    tmp_path: Path,
) -> None:
    spec = IngestorSpec("spool-unavailable", "assets", "id", TOPIC)
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the spool folder should be")
    delivery = KafkaDelivery(spec, settings(blocked))

    await delivery.queue(pending(1))

    assert delivery.spool.file is None and delivery.buffer.records == 3
    assert delivery.spool.problem is not None and str(blocked) in delivery.spool.problem
