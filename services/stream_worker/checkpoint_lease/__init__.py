"""One worker per checkpoint: the lease a stream worker holds on its checkpoint while it runs.

Two workers on one checkpoint (a rolling deploy, a ``--scale``) would each remove the other's
unfinished writes and both run, and commit, the same batches. So the worker takes a lease
before anything touches the checkpoint, and a second worker refuses to start, naming the holder.

- **A local path**: an exclusive ``flock`` on ``<checkpoint>/lease``. The operating system frees
  it with the process however that ends (SIGKILL included), so a new worker takes it at once
  after a crash; it cannot expire while the holder lives. The file holds the holder's name for
  the refusal and stays in place when released: deleting a lock file lets two processes lock
  two different files of one name.
- **gs://**: the object ``<checkpoint>/lease``, created only if absent (``ifGenerationMatch=0``)
  and renewed by rewriting it only if it is still the generation this worker wrote, so a
  renewal never overwrites another holder. A holder that died without releasing it blocks
  others until ``ttl_seconds`` after its last write (Cloud Storage's ``updated`` time); a
  successor then rewrites that exact generation, so of two successors only one wins. Deleting
  the object by hand breaks the lease: its holder, if alive, fails its next renewal and stops.
- Any other file system (``hdfs://``): no lease; the worker warns that keeping one worker on the
  checkpoint is up to whoever runs it.

A holder that cannot renew for 60 % of ``ttl_seconds``, or finds the lease gone or rewritten by
another, has lost it (``LeaseKeeper`` calls back), and must stop writing: what is left of the
period is the margin for clock skew and for the query to stop before a successor may take over.

The modules: ``holder`` (who holds a lease, the errors, the ``CheckpointLease`` interface),
``file`` (``FileLease``), ``cloud_storage`` (``CloudStorageLease``), ``keeper``
(``LeaseKeeper``); ``checkpoint_lease`` below picks the lease for a location.
"""

from __future__ import annotations

from pathlib import Path

from services.stream_worker.checkpoint_lease.cloud_storage import (
    CloudStorageLease,
    cloud_storage_client,
)
from services.stream_worker.checkpoint_lease.file import FileLease
from services.stream_worker.checkpoint_lease.holder import (
    LEASE_NAME,
    CheckpointHeld,
    CheckpointLease,
    LeaseHolder,
    LeaseLost,
)
from services.stream_worker.checkpoint_lease.keeper import LeaseKeeper
from shared.settings import WorkerSettings

__all__ = [
    "LEASE_NAME",
    "CheckpointHeld",
    "CheckpointLease",
    "CloudStorageLease",
    "FileLease",
    "LeaseHolder",
    "LeaseKeeper",
    "LeaseLost",
    "checkpoint_lease",
    "cloud_storage_client",
]


def checkpoint_lease(settings: WorkerSettings) -> CheckpointLease | None:
    """The lease for the settings' checkpoint; None where there is none to take (see the
    package's docstring)."""
    location = settings.checkpoint_location
    if location.startswith("gs://"):
        return CloudStorageLease(
            cloud_storage_client(settings), location, settings.stream_checkpoint_lease_seconds
        )
    if location.startswith("file:"):
        return FileLease(Path(location.removeprefix("file:").removeprefix("//")))
    if "://" in location:
        return None
    return FileLease(Path(location))
