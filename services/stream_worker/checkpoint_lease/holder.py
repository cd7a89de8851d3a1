"""What every checkpoint lease shares: who holds it, how it is refused or lost, and the
interface the worker and ``LeaseKeeper`` use (``CheckpointLease``)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

LEASE_NAME = "lease"
"""The lease's file or object, in the checkpoint's folder (Spark reads nothing of that name)."""
RENEWALS_PER_TTL = 3
"""A holder renews this many times per ``ttl_seconds``."""
LOST_AFTER_TTL_FRACTION = 0.6
"""A holder that could not renew for this share of ``ttl_seconds`` has lost its lease: with a
last call of up to a sixth of it, that leaves a fifth for the query to stop and for clock skew."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease: the worker's host and pid, since when, and a token no other has."""

    host: str
    pid: int
    since: datetime
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    ttl_seconds: float | None = None
    """The holder's own lease period: a successor judges expiry by it, not by its own
    setting, so two workers configured differently still agree when a lease expires."""

    @classmethod
    def this_process(cls, ttl_seconds: float | None = None) -> LeaseHolder:
        since = datetime.now(UTC).replace(microsecond=0)
        return cls(socket.gethostname(), os.getpid(), since, ttl_seconds=ttl_seconds)

    def describe(self) -> str:
        since = utc_text(self.since)
        return f"the stream worker on host {self.host} (pid {self.pid}) since {since}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "since": self.since.isoformat()})

    @classmethod
    def from_json(cls, text: str) -> LeaseHolder | None:
        """The holder a lease names; None for an empty or unreadable one (a holder still
        writing its name, or a file released)."""
        try:
            values: dict[str, Any] = json.loads(text)
            ttl = values.get("ttl_seconds")
            return cls(
                str(values["host"]),
                int(values["pid"]),
                datetime.fromisoformat(values["since"]),
                str(values["token"]),
                float(ttl) if ttl is not None else None,
            )
        except (ValueError, KeyError, TypeError):
            return None


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CheckpointHeld(Exception):
    """Another worker holds the checkpoint's lease; the message is one line saying what to do."""


class LeaseLost(Exception):
    """This worker no longer holds its checkpoint's lease: it must stop writing at once."""


class CheckpointLease(Protocol):
    """A lease on one checkpoint."""

    location: str
    ttl_seconds: float | None
    """How long the lease outlives its holder's last renewal; None: as long as the process."""

    def acquire(self) -> None:
        """Take the lease, or raise ``CheckpointHeld`` naming its holder."""
        ...

    def renew(self) -> None:
        """Confirm or extend the lease; ``LeaseLost`` when it is no longer this worker's, any
        other error when it could not tell (tried again until the lease would expire)."""
        ...

    def release(self) -> None:
        """Give the lease up, if this worker still holds it."""
        ...
