"""The stream worker recovery chain's steps (``tests/integration/test_stream_worker_recovery.py``):
what a kill leaves in the warehouse, the checkpoint and the consumer group, and how each kill
is brought about."""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.stream_worker import AssetWorker
from tests.harness.waiting import wait_for

Offsets = dict[tuple[str, int], tuple[int, int | None]]


def uncommitted_batches(checkpoint: Path) -> set[str]:
    """Batches Spark planned (``offsets/N``) but did not commit (no ``commits/N``)."""
    planned = {path.name for path in (checkpoint / "offsets").iterdir() if path.name.isdigit()}
    commits = checkpoint / "commits"
    committed = {path.name for path in commits.iterdir() if path.name.isdigit()}
    return planned - committed


def log_size(worker: AssetWorker) -> int:
    """Where the next start's lines will begin in the worker's log (every start appends)."""
    path = worker.process.log_path
    return path.stat().st_size if path.exists() else 0


def log_since(worker: AssetWorker, mark: int) -> str:
    """The worker's log from ``mark`` on: the lines of the processes started since."""
    return worker.process.log_path.read_bytes()[mark:].decode(errors="replace")


@dataclass
class Left:
    """What the worker left in the warehouse, its checkpoint and its consumer group."""

    rows: int
    uncommitted: set[str]
    offsets: Offsets
    duplicates: list[dict[str, Any]]

    @classmethod
    def by(cls, worker: AssetWorker) -> Left:
        return cls(
            worker.count("assets"),
            uncommitted_batches(Path(worker.settings.checkpoint_location)),
            worker.asset_offsets(),
            worker.duplicate_assets(),
        )


@dataclass
class Killed:
    """How one process of the chain ended, its own log lines, and what it left."""

    exit_status: int
    log: str
    left: Left


@dataclass
class FailedStart:
    """The worker while its query could not start: its health, and its log so far."""

    health: dict[str, Any]
    alive: bool
    pid: int
    log: str


@dataclass
class Recovery:
    """The last start of the chain: its failed query start, then what it left once it had
    worked off the backlog."""

    failed_start: FailedStart
    left: Left
    pid: int
    """The process id of the worker that worked off the backlog."""
    left_again: Left
    """Read once more after ``left``: nothing was written past the log end."""
    log: str
    """Every process's lines, of the whole chain."""


def half_written_first_offset_log(checkpoint: Path) -> Path:
    """What a SIGKILL while Spark writes ``offsets/0`` leaves: its query id, and a zero-byte
    temporary file with its checksum where the first offset-log entry was to be renamed."""
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}) + "\n")
    unfinished = checkpoint / "offsets" / f".0.{uuid.uuid4()}.tmp"
    unfinished.write_bytes(b"")
    (checkpoint / "offsets" / f".{unfinished.name}.crc").write_bytes(b"")
    return unfinished


def killed_at_fault_point(worker: AssetWorker, point: str) -> Killed:
    """Start the worker with fault point ``point`` and let it kill itself there."""
    worker.process.environment["COINSTREAM_WORKER_FAULT_POINT"] = point
    mark = log_size(worker)
    worker.launch()
    assert worker.process.process is not None
    status = worker.process.process.wait(timeout=240)
    return Killed(status, log_since(worker, mark), Left.by(worker))


def killed_mid_batch(worker: AssetWorker) -> int:
    """Start the worker without a fault point and SIGKILL it inside a batch that follows a
    finished one (the rerun of the killed batch), so loads and MERGEs are in play."""
    del worker.process.environment["COINSTREAM_WORKER_FAULT_POINT"]
    worker.start()
    wait_for(lambda: worker.health().get("batches", 0) >= 1, "a batch to finish", 90)
    wait_for(lambda: worker.health().get("batch_in_progress") is not None, "a batch to run", 60)
    assert not worker.caught_up([worker.settings.topic_assets]), "the backlog was done already"
    return worker.process.stop(signal.SIGKILL)


def failed_start_then_repaired(worker: AssetWorker) -> FailedStart:
    """Start the worker on a checkpoint whose metadata Spark cannot read (``start()`` raises,
    every time), then repair it: the next try, after the backoff, runs the query."""
    checkpoint = Path(worker.settings.checkpoint_location)
    intact = checkpoint.with_name(f"{checkpoint.name}-intact")
    intact.mkdir()
    # Its checksum aside too, or Hadoop would refuse the file before Spark parses it.
    for name in ("metadata", ".metadata.crc"):
        if (checkpoint / name).exists():
            shutil.move(checkpoint / name, intact / name)
    (checkpoint / "metadata").write_text("not json{")
    mark = log_size(worker)
    worker.launch()

    def failed_but_alive() -> bool:
        assert worker.process.is_running(), worker.process.log_tail(20)
        return worker.health().get("state") == "FAILED"

    wait_for(
        lambda: failed_but_alive() and "did not start" in log_since(worker, mark),
        "the worker to report the failed start",
        180,
    )
    assert worker.process.process is not None
    failed = FailedStart(
        worker.health(),
        worker.process.is_running(),
        worker.process.process.pid,
        log_since(worker, mark),
    )
    for saved in intact.iterdir():
        shutil.move(saved, checkpoint / saved.name)
    intact.rmdir()
    wait_for(lambda: worker.health().get("state") == "RUNNING", "the query to start", 180)
    return failed
