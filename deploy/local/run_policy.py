"""``make run``'s policy: when to restart a process that exited, and how to stop the stack.

Restarts follow Compose's restart policy (a delay that doubles up to a cap, and resets once a
process has run a while); a process that exits ``run_restart_limit`` times within
``run_restart_window_seconds`` stops the stack instead, as does exit status 2, which our
commands use for a problem a restart cannot fix (a port in use, a warehouse that differs).
Shutdown goes in stages, producers before consumers before infrastructure, each process with
the time its own shutdown needs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from shared.settings import Settings

FIRST_RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
# A process that ran this long before exiting starts again after the first delay.
STEADY_RUN_SECONDS = 60.0
EXIT_NOT_WORTH_RESTARTING = 2

# The stream worker lets its batch in progress finish for up to 60 s
# (services/stream_worker/worker.py, GRACEFUL_STOP_SECONDS), then stops Spark.
STREAM_WORKER_STOP_SECONDS = 60.0 + 30.0
KAFKA_STOP_SECONDS = 60.0
DEFAULT_STOP_SECONDS = 15.0


@dataclass
class RestartPolicy:
    """Decides, for one process, what its exits lead to."""

    limit: int
    window_seconds: float
    exits: deque[float] = field(default_factory=deque)
    delay_seconds: float = FIRST_RESTART_DELAY_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(settings.run_restart_limit, settings.run_restart_window_seconds)

    def on_exit(self, now: float, ran_seconds: float) -> float | None:
        """The delay before the restart, or None when the process keeps failing."""
        self.exits.append(now)
        while self.exits and self.exits[0] < now - self.window_seconds:
            self.exits.popleft()
        if len(self.exits) >= self.limit:
            return None
        if ran_seconds >= STEADY_RUN_SECONDS:
            self.delay_seconds = FIRST_RESTART_DELAY_SECONDS
        delay = self.delay_seconds
        self.delay_seconds = min(delay * 2, MAX_RESTART_DELAY_SECONDS)
        return delay


def stop_stage(name: str) -> int:
    """When a process stops, from 0: ingestors (and the readiness watcher) first, so that what
    they hold reaches Kafka; then the stream worker, so that its batch reaches the warehouse;
    then the services that only read; Kafka and the emulator last."""
    if name in ("asset-ingestor", "exchange-ingestor", "stack"):
        return 0
    if name == "stream-worker":
        return 1
    if name == "kafka" or name.startswith("kafka-") or name == "bigquery":
        return 3
    return 2


def stop_seconds(name: str, settings: Settings) -> float:
    """How long ``name`` may take to stop after SIGTERM before it is killed."""
    if name.endswith("-ingestor"):
        return settings.shutdown_flush_seconds + DEFAULT_STOP_SECONDS
    if name == "stream-worker":
        return STREAM_WORKER_STOP_SECONDS
    if name == "kafka" or name.startswith("kafka-"):
        return KAFKA_STOP_SECONDS
    return DEFAULT_STOP_SECONDS
