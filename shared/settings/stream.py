"""The stream worker's query: its trigger, checkpoint, sink and fault points."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from shared.settings.common import CommonSettings


class StreamSettings(CommonSettings):
    """How the stream worker paces, checkpoints and writes its micro-batches. The dashboard
    reads the trigger too, to refresh as often as new rows can arrive."""

    stream_trigger_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between micro-batches. Local default 1 (the stack's CPU is the "
        "same at 1 and 5 s, a poll's rows are queryable four times sooner: [the "
        "trigger](stream-worker.md#trigger)); Terraform sets 10 for "
        "BigQuery (a batch without rows writes nothing; [the trigger, from the "
        "quotas](gcp.md#the-trigger-from-the-quotas)).",
    )
    stream_max_records_per_batch: int = Field(
        default=100_000,
        ge=1,
        description="Most Kafka records one micro-batch reads.",
    )
    stream_checkpoint_location: str | None = Field(
        default=None,
        description="Spark checkpoint folder (a local path, or `gs://bucket/path` in the "
        "cloud). Unset: `<state_dir>/checkpoints/stream-worker`.",
    )
    gcs_emulator_url: str | None = Field(
        default=None,
        description="Cloud Storage endpoint for a `gs://` checkpoint, used without "
        "credentials (a local GCS emulator, as in the tests). Unset: Google Cloud"
        " Storage with Application Default Credentials.",
    )
    stream_checkpoint_lease_seconds: float = Field(
        default=60.0,
        ge=3,
        description="How long the stream worker's lease on a `gs://` checkpoint outlives its "
        "last renewal: a worker that died without releasing it keeps others off "
        "the checkpoint this long. The holder renews every third of it and stops "
        "its query when it could not for 60 % of it. A local checkpoint's lease "
        "is a file lock, freed when its process ends ([one worker per "
        "checkpoint](stream-worker.md#one-worker-per-checkpoint)).",
    )
    stream_dedup_horizon_hours: int = Field(
        default=48,
        ge=1,
        description="Slack of the MERGE's look-back: a micro-batch looks for rows it would "
        "duplicate among those processed since its oldest record's source time "
        "minus this (clock skew), so a [replay](stream-worker.md#replay) of old "
        "records stays exactly once; bounds the partitions each MERGE scans.",
    )
    stream_sink: Literal["merge", "storage-write"] = Field(
        default="merge",
        description="How the stream worker writes each micro-batch: `merge` (a MERGE on the "
        "key per table; a record published twice is stored once; the local "
        "default) or `storage-write` (an append through a Storage Write API "
        "pending stream committed atomically; scans nothing in steady state; a "
        "record published twice is stored twice and read once; the Terraform "
        "default) ([the two sinks](stream-worker.md#the-two-sinks)).",
    )
    stream_fail_on_data_loss: bool = Field(
        default=False,
        description="Stop the stream worker when Kafka deleted records it had not read yet "
        "(retention ran past it). `false`: go on, counting each lost range in "
        "`coinstream_stream_offsets_lost_total`, a log line and a `quarantine` "
        "row ([data loss](stream-worker.md#records-lost-to-retention)).",
    )
    worker_fault_point: Literal["after-merge", "after-commit"] | None = Field(
        default=None,
        description="Fault injection, for tests and the chaos suite only: SIGKILL the stream "
        "worker in its first batch with rows, at `after-merge` or `after-commit` "
        "([fault points](stream-worker.md#fault-points)). Unset: no fault.",
    )

    @field_validator("gcs_emulator_url")
    @classmethod
    def _gcs_emulator_url_has_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or parts.port is None:
            raise ValueError(
                f"COINSTREAM_GCS_EMULATOR_URL must look like http://127.0.0.1:4443, got {value!r}"
            )
        return value.rstrip("/")

    @property
    def checkpoint_location(self) -> str:
        """Where the stream worker keeps its Spark checkpoint."""
        if self.stream_checkpoint_location:
            return self.stream_checkpoint_location
        return str(self.state_dir / "checkpoints" / "stream-worker")

    @property
    def checkpoint_in_cloud_storage(self) -> bool:
        """True when the Spark checkpoint lives in Cloud Storage (a ``gs://`` location)."""
        return self.checkpoint_location.startswith("gs://")
