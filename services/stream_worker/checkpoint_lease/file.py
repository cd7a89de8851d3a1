"""The lease on a checkpoint on a local (or mounted) path: an exclusive ``flock`` on
``<checkpoint>/lease``, freed by the operating system with the process however that ends."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from services.stream_worker.checkpoint_lease.holder import (
    LEASE_NAME,
    CheckpointHeld,
    LeaseHolder,
    LeaseLost,
)


class FileLease:
    """The lease on a checkpoint on a local (or mounted) path: a ``flock`` on its lease file."""

    def __init__(self, directory: Path, holder: LeaseHolder | None = None) -> None:
        self.location = str(directory)
        self.ttl_seconds: float | None = None
        self.path = directory / LEASE_NAME
        self.holder = holder or LeaseHolder.this_process()
        self._fd: int | None = None
        self._inode = 0

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # os.open's descriptors are not inherited by children (PEP 446): the lock dies with us,
        # not with Spark's JVM.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = LeaseHolder.from_json(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            raise CheckpointHeld(
                f"the checkpoint {self.location} is in use by "
                f"{holder.describe() if holder else 'another stream worker'}; stop that worker "
                "first (two workers on one checkpoint would both write its batches): the lock "
                f"on {self.path} is freed as soon as that process ends, however it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.holder.to_json().encode(), 0)
        os.fsync(fd)
        self._fd, self._inode = fd, os.fstat(fd).st_ino

    def renew(self) -> None:
        """A flock cannot be taken from its holder; but a lease file removed or replaced (the
        checkpoint folder deleted or moved away) lets another worker lock a new one."""
        try:
            replaced = os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            replaced = True
        if replaced:
            raise LeaseLost(
                f"the lease file {self.path} was removed or replaced while this worker held it, "
                "so another worker may now run on the checkpoint"
            )

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
