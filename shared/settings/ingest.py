"""The ingestors' pace and what they hold while Kafka is away."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings.common import CommonSettings


class IngestSettings(CommonSettings):
    """How often an ingestor polls, how long it backs off, and the buffer and spool that keep
    its polls while Kafka cannot take them."""

    poll_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between polls. Unset: derived from the credit budget (real API) "
        "or 5 s (simulator). Set: used as given, with a warning if it overruns "
        "the budget.",
    )
    quota_pause_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How long an ingestor stops polling after CoinCap says the quota is spent"
        " (when the answer gives no `Retry-After`).",
    )
    quota_pause_max_seconds: float = Field(
        default=86_400.0,
        gt=0,
        le=31_622_400,
        description="The longest quota pause an ingestor takes, whatever CoinCap's "
        "`Retry-After` says (a `Retry-After` of `1e12` is a broken answer, not a "
        "plan): after it, one poll asks again. At most 366 days.",
    )
    ingest_buffer_max_records: int = Field(
        default=100_000,
        ge=1,
        description="Records an ingestor holds while Kafka is unreachable; beyond it the "
        "oldest polls are dropped, counted and logged. At least "
        "`COINSTREAM_COINCAP_PAGE_LIMIT` (one poll's page), or the ingestors "
        "refuse to start.",
    )
    ingest_max_polls_in_flight: int = Field(
        default=8,
        ge=1,
        description="Polls an ingestor hands to Kafka before the oldest is acknowledged, so "
        "ingest is not bound by one broker round trip per poll; `1` waits for "
        "each poll. Records in flight count toward "
        "`COINSTREAM_INGEST_BUFFER_MAX_RECORDS` and are never dropped from it.",
    )
    ingest_spool_dir: Path | None = Field(
        default=None,
        description="Folder of the ingestors' durable spools, one SQLite file per ingestor "
        "name (`asset-ingestor.sqlite3`): a poll is written there before it "
        "counts as fetched and removed once Kafka has acknowledged it, so an "
        "ingestor killed while Kafka is away delivers it when it starts again "
        "([ingestors](ingestors.md#the-durable-spool)). Unset: "
        "`<state_dir>/ingest-spool`; Compose keeps it on a volume per ingestor.",
    )
    ingest_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of messages (keys and values) an ingestor holds in its spool, and "
        "so in its buffer, while Kafka is unreachable (256 MiB); beyond it the "
        "oldest polls are dropped, counted and logged (reason `spool_full`). At "
        "least 1 MiB.",
    )
    shutdown_flush_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a stopping ingestor tries to deliver what it holds.",
    )

    @property
    def ingest_spool_directory(self) -> Path:
        """Where the ingestors keep their durable spools (see ``ingest_spool_dir``)."""
        return self.ingest_spool_dir or self.state_dir / "ingest-spool"
