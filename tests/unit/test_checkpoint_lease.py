"""The lease on a local checkpoint: a file lock taken, refused with its holder's name, checked,
released, and lost when its file is replaced; and which lease each kind of location gets."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.stream_worker.checkpoint_lease import (
    CheckpointHeld,
    CloudStorageLease,
    FileLease,
    LeaseHolder,
    LeaseKeeper,
    LeaseLost,
    checkpoint_lease,
)
from tests.harness.processes import settings_from

SINCE = datetime(2026, 12, 7, 3, 4, 5, tzinfo=UTC)


def holder(host: str = "worker-a", pid: int = 4242) -> LeaseHolder:
    return LeaseHolder(host, pid, SINCE)


def test_a_second_lease_on_a_held_checkpoint_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = FileLease(tmp_path / "checkpoint", holder())
    first.acquire()
    second = FileLease(tmp_path / "checkpoint", holder("worker-b", 7))
    with pytest.raises(CheckpointHeld) as refused:
        second.acquire()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"the checkpoint {tmp_path / 'checkpoint'} is in use by the stream worker on host "
        "worker-a (pid 4242) since 2026-12-07T03:04:05Z; stop that worker first"
    )
    first.renew()  # the refusal took nothing from the holder
    first.release()


def test_a_released_lease_is_taken_by_the_next_worker_at_once(tmp_path: Path) -> None:
    first = FileLease(tmp_path, holder())
    first.acquire()
    first.release()
    second = FileLease(tmp_path, holder("worker-b", 7))
    second.acquire()
    assert LeaseHolder.from_json((tmp_path / "lease").read_text()) == second.holder
    second.release()
    # Released, the file stays (deleting a lock file lets two processes lock two files) and
    # names nobody.
    assert (tmp_path / "lease").read_text() == ""


def test_a_lease_file_removed_under_its_holder_is_a_lost_lease(tmp_path: Path) -> None:
    lease = FileLease(tmp_path, holder())
    lease.acquire()
    (tmp_path / "lease").unlink()
    with pytest.raises(LeaseLost, match="was removed or replaced"):
        lease.renew()
    # Another worker can now lock a new file of that name: exactly why the holder must stop.
    other = FileLease(tmp_path, holder("worker-b", 7))
    other.acquire()
    other.release()
    lease.release()


def test_the_keeper_calls_back_once_when_the_lease_is_lost(tmp_path: Path) -> None:
    lease = FileLease(tmp_path, holder())
    lease.acquire()
    lost: list[LeaseLost] = []
    called = threading.Event()

    def on_lost(error: LeaseLost) -> None:
        lost.append(error)
        called.set()

    keeper = LeaseKeeper(lease, on_lost)
    keeper.interval_seconds = 0.05
    keeper.start()
    try:
        assert not called.wait(0.3), "a held lease was reported lost"
        os.replace(tmp_path / "lease", tmp_path / "moved-away")
        assert called.wait(5), "the keeper did not notice the lost lease"
    finally:
        keeper.stop()
        lease.release()
    assert len(lost) == 1 and keeper.lost is lost[0]


def test_the_holder_reads_back_as_written_and_an_unreadable_one_as_nobody() -> None:
    written = holder()
    assert LeaseHolder.from_json(written.to_json()) == written
    with_period = LeaseHolder("h", 1, SINCE, ttl_seconds=60.0)
    assert LeaseHolder.from_json(with_period.to_json()) == with_period
    assert LeaseHolder.from_json("") is None
    assert LeaseHolder.from_json('{"host": "h"}') is None
    assert re.fullmatch(r"[0-9a-f]{32}", written.token)


def test_each_kind_of_checkpoint_location_gets_its_lease(tmp_path: Path) -> None:
    def lease_for(location: str) -> object:
        return checkpoint_lease(
            settings_from(
                {
                    "COINSTREAM_STREAM_CHECKPOINT_LOCATION": location,
                    "COINSTREAM_GCS_EMULATOR_URL": "http://127.0.0.1:4443",
                }
            )
        )

    local = lease_for(str(tmp_path / "cp"))
    assert isinstance(local, FileLease) and local.path == tmp_path / "cp" / "lease"
    file_url = lease_for(f"file://{tmp_path}/cp")
    assert isinstance(file_url, FileLease) and file_url.path == tmp_path / "cp" / "lease"
    cloud = lease_for("gs://bucket/stream-worker/")
    assert isinstance(cloud, CloudStorageLease)
    assert cloud.url == "gs://bucket/stream-worker/lease" and cloud.ttl_seconds == 60.0
    assert lease_for("hdfs://namenode/checkpoints/stream-worker") is None
