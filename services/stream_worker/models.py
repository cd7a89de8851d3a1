"""What the stream worker's HTTP face answers."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pydantic import BaseModel

from services.stream_worker.worker import WorkerStatus


class WorkerHealth(BaseModel):
    status: str
    """``ok``, or ``degraded`` when the query is not running or the last batch failed."""
    state: str
    """STARTING, RUNNING, PAUSED or STOPPED (as the control service asked), or FAILED
    (restarting from the checkpoint)."""
    batches: int
    last_batch_id: int | None
    last_batch_at: datetime | None
    last_batch_rows: dict[str, int] | None
    last_error: str | None
    last_error_at: datetime | None
    batch_in_progress: int | None
    """The micro-batch being written right now, if any."""

    @classmethod
    def of(cls, status: WorkerStatus) -> WorkerHealth:
        """The health report for the worker's state right now."""
        # PAUSED and STOPPED are what the operator asked for, not a problem.
        degraded = status.state in ("STARTING", "FAILED") or (
            status.last_error_at is not None
            and (status.last_batch_at is None or status.last_error_at > status.last_batch_at)
        )
        return cls(status="degraded" if degraded else "ok", **dataclasses.asdict(status))
