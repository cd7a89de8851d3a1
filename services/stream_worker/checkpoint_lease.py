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
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]  # ships no type hints
from google.cloud.storage.retry import DEFAULT_RETRY
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from shared.settings import Settings

logger = logging.getLogger(__name__)

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
        return f"the stream worker on host {self.host} (pid {self.pid}) since {_iso(self.since)}"

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


def _iso(moment: datetime) -> str:
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


@dataclass(frozen=True)
class _StoredLease:
    """The lease object as read: its holder, generation, and when it was last written."""

    holder: LeaseHolder | None
    generation: int
    updated: datetime


class _LeaseChanged(Exception):
    """The lease object changed between two calls; look at it again."""


class CloudStorageLease:
    """The lease on a ``gs://`` checkpoint: an object written under generation preconditions."""

    def __init__(
        self,
        client: storage.Client,
        location: str,
        ttl_seconds: float,
        holder: LeaseHolder | None = None,
    ) -> None:
        bucket, _, prefix = location.removeprefix("gs://").partition("/")
        self.location = location
        self.ttl_seconds: float | None = ttl_seconds
        self.object_name = f"{prefix.strip('/')}/{LEASE_NAME}" if prefix.strip("/") else LEASE_NAME
        self.url = f"gs://{bucket}/{self.object_name}"
        self.holder = holder or LeaseHolder.this_process(ttl_seconds)
        self._bucket: Any = client.bucket(bucket)
        self._generation: int | None = None
        # Each call's timeout and retry deadline: several calls fit in one renewal period.
        self._call_seconds = max(1.0, ttl_seconds / (2 * RENEWALS_PER_TTL))

    def acquire(self) -> None:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(5),
                retry=retry_if_exception_type(_LeaseChanged),
                reraise=True,
            ):
                with attempt:
                    self._try_acquire()
        except _LeaseChanged:
            raise CheckpointHeld(
                f"the lease {self.url} changed at each of 5 looks while this worker tried to "
                "take it: other workers are starting on the checkpoint; stop all but one"
            ) from None

    def _try_acquire(self) -> None:
        try:
            self._write(if_generation_match=0)
            return
        except api_exceptions.PreconditionFailed:
            pass
        stored = self._read()
        if stored is None:
            raise _LeaseChanged  # released in between: try to create it again
        if self._is_ours(stored):
            return  # our own create, retried after its answer was lost
        ttl = (stored.holder and stored.holder.ttl_seconds) or self.ttl_seconds or 0.0
        expires = stored.updated + timedelta(seconds=ttl)
        holder = stored.holder.describe() if stored.holder else "another stream worker"
        if datetime.now(UTC) < expires:
            raise CheckpointHeld(
                f"the checkpoint {self.location} is in use by {holder}; stop that worker first "
                "(two workers on one checkpoint would both write its batches); if it died "
                f"without releasing its lease, the lease expires at {_iso(expires)} "
                f"({ttl:g} s after its last renewal), or break it now with "
                f"`gcloud storage rm {self.url}` once you are sure that worker is gone"
            )
        try:
            self._write(if_generation_match=stored.generation)
        except api_exceptions.PreconditionFailed:
            raise _LeaseChanged from None  # renewed, or another successor won: look again
        logger.warning(
            "took over the lease on %s from %s, which expired at %s without being renewed",
            self.location,
            holder,
            _iso(expires),
        )

    def renew(self) -> None:
        assert self._generation is not None, "renew() before acquire()"
        try:
            self._write(if_generation_match=self._generation)
            return
        except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
            pass
        stored = self._read()
        if stored is not None and self._is_ours(stored):
            return  # our own renewal, retried after its answer was lost
        self._generation = None
        if stored is None:
            raise LeaseLost(f"the lease {self.url} was removed while this worker held it")
        holder = stored.holder.describe() if stored.holder else "another stream worker"
        raise LeaseLost(f"the lease {self.url} is now held by {holder}")

    def release(self) -> None:
        if self._generation is None:
            return
        try:
            self._bucket.blob(self.object_name).delete(
                if_generation_match=self._generation,
                timeout=self._call_seconds,
                retry=DEFAULT_RETRY.with_deadline(self._call_seconds),
            )
        except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
            pass  # no longer ours: nothing to give up
        finally:
            self._generation = None

    def _is_ours(self, stored: _StoredLease) -> bool:
        if stored.holder is None or stored.holder.token != self.holder.token:
            return False
        self._generation = stored.generation
        return True

    def _write(self, if_generation_match: int) -> None:
        """Write this worker's lease if the object is at that generation (0: absent)."""
        blob = self._bucket.blob(self.object_name)
        # Every write carries a precondition, so retrying one is safe: a retry of a write that
        # happened fails its precondition and then finds this worker's token.
        blob.upload_from_string(
            self.holder.to_json(),
            content_type="application/json",
            if_generation_match=if_generation_match,
            timeout=self._call_seconds,
            retry=DEFAULT_RETRY.with_deadline(self._call_seconds),
        )
        self._generation = int(blob.generation)

    def _read(self) -> _StoredLease | None:
        """The lease object now; None when there is none."""
        retry = DEFAULT_RETRY.with_deadline(self._call_seconds)
        blob = self._bucket.get_blob(self.object_name, timeout=self._call_seconds, retry=retry)
        if blob is None:
            return None
        try:
            text = blob.download_as_bytes(
                if_generation_match=blob.generation, timeout=self._call_seconds, retry=retry
            ).decode(errors="replace")
        except (api_exceptions.PreconditionFailed, api_exceptions.NotFound):
            raise _LeaseChanged from None
        return _StoredLease(LeaseHolder.from_json(text), int(blob.generation), blob.updated)


def cloud_storage_client(settings: Settings) -> storage.Client:
    """A Cloud Storage client: Application Default Credentials, or none on the emulator."""
    if settings.gcs_emulator_url:
        return storage.Client(
            project=settings.gcp_project or "coinstream-local",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=settings.gcs_emulator_url),
        )
    return storage.Client(project=settings.gcp_project)


def checkpoint_lease(settings: Settings) -> CheckpointLease | None:
    """The lease for the settings' checkpoint; None where there is none to take (see the
    module's docstring)."""
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
