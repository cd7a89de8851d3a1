"""The lease on a ``gs://`` checkpoint: the object ``<checkpoint>/lease``, written only under
generation preconditions, so a renewal never overwrites another holder and of two successors
to an expired lease only one wins."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[attr-defined]  # ships no type hints
from google.cloud.storage.retry import DEFAULT_RETRY
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from services.stream_worker.checkpoint_lease.holder import (
    LEASE_NAME,
    RENEWALS_PER_TTL,
    CheckpointHeld,
    LeaseHolder,
    LeaseLost,
    utc_text,
)
from shared.settings import WorkerSettings

logger = logging.getLogger(__name__)


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
                f"without releasing its lease, the lease expires at {utc_text(expires)} "
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
            utc_text(expires),
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


def cloud_storage_client(settings: WorkerSettings) -> storage.Client:
    """A Cloud Storage client: Application Default Credentials, or none on the emulator."""
    if settings.gcs_emulator_url:
        return storage.Client(
            project=settings.gcp_project or "coinstream-local",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=settings.gcs_emulator_url),
        )
    return storage.Client(project=settings.gcp_project)
