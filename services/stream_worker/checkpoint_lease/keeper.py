"""Keeping a lease: renewed from a thread of its own, and given up as lost in time for the
query to stop before a successor may take over."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from services.stream_worker.checkpoint_lease.holder import (
    LOST_AFTER_TTL_FRACTION,
    RENEWALS_PER_TTL,
    CheckpointLease,
    LeaseLost,
)

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews a lease from a thread of its own; calls ``on_lost`` once if it is lost."""

    def __init__(self, lease: CheckpointLease, on_lost: Callable[[LeaseLost], None]) -> None:
        self.lease = lease
        self.on_lost = on_lost
        ttl = lease.ttl_seconds
        # A file lease cannot expire: it is only checked, every few seconds.
        self.interval_seconds = ttl / RENEWALS_PER_TTL if ttl else 5.0
        self.lost: LeaseLost | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        ttl = self.lease.ttl_seconds
        last_renewal = time.monotonic()
        next_attempt = last_renewal + self.interval_seconds
        while not self._stopping.wait(max(0.0, next_attempt - time.monotonic())):
            if ttl is not None and time.monotonic() - last_renewal >= ttl * LOST_AFTER_TTL_FRACTION:
                self._lose(
                    LeaseLost(
                        f"could not renew the lease on {self.lease.location} for "
                        f"{time.monotonic() - last_renewal:.0f} s; it expires {ttl:g} s after "
                        "the last renewal, when another worker may take it"
                    )
                )
                return
            attempt = time.monotonic()
            try:
                self.lease.renew()
            except LeaseLost as error:
                self._lose(error)
                return
            except Exception as error:  # storage unreachable: try again soon, until the deadline
                logger.warning("renewing the lease on %s failed: %s", self.lease.location, error)
                next_attempt = time.monotonic() + self.interval_seconds / RENEWALS_PER_TTL
                if ttl is not None:
                    next_attempt = min(next_attempt, last_renewal + ttl * LOST_AFTER_TTL_FRACTION)
                continue
            last_renewal = attempt
            next_attempt = attempt + self.interval_seconds

    def _lose(self, error: LeaseLost) -> None:
        self.lost = error
        self.on_lost(error)
