"""What the ingestor's HTTP face answers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from shared.redaction import redact_secrets

if TYPE_CHECKING:
    from services.ingestor.loop import Ingestor


class IngestorHealth(BaseModel):
    """The ingestor's state: is it polling, delivering, paused by quota, losing anything.

    The control service reads ``status``, ``state``, ``last_successful_poll_at``,
    ``last_error`` and ``last_error_at`` from it.
    """

    status: Literal["ok", "degraded"]
    """``ok``, or ``degraded`` while Kafka is unreachable, the quota is spent, the last poll
    failed, the loop failed or has not read its desired state yet, or polls are not being
    spooled."""
    name: str
    endpoint: str
    topic: str
    simulated: bool
    poll_interval_seconds: float
    state: Literal["STARTING", "RUNNING", "PAUSED", "STOPPED", "FAILED"]
    """What the loop is doing; PAUSED and STOPPED poll nothing (see the control service)."""
    desired_state: Literal["RUNNING", "PAUSED", "STOPPED"]
    polls_succeeded: int
    polls_failed: int
    last_poll_id: str | None
    last_successful_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    quota_exhausted_until: datetime | None
    kafka_connected: bool
    buffered_records: int
    """Records fetched but not yet acknowledged by Kafka."""
    dropped_records: int
    dropped_poll_ids: list[str]
    """The newest dropped poll ids; the log has every one."""
    spool_path: str
    """The durable spool's file (``COINSTREAM_INGEST_SPOOL_DIR``)."""
    spooled_polls: int
    spooled_records: int
    """Records written to the spool and not yet all acknowledged by Kafka with their poll."""
    spooled_bytes: int
    spool_problem: str | None
    """Why polls are not being spooled (the spool cannot be opened, or a write failed): a kill
    would lose what is held. None while the spool works."""

    @classmethod
    def of(cls, ingestor: Ingestor) -> IngestorHealth:
        """The health report for the loop's, its schedule's and its delivery's state now."""
        schedule, delivery = ingestor.schedule, ingestor.delivery
        buffered_records = delivery.buffer.records
        spool = delivery.spool.file
        if ingestor.state in ("STARTING", "FAILED") or delivery.spool.problem is not None:
            degraded = True
        elif ingestor.state in ("PAUSED", "STOPPED"):
            # Idle on purpose: no polls and possibly no producer; only undelivered records count.
            degraded = buffered_records > 0 and not delivery.kafka_connected
        else:
            last_poll_failed = ingestor.last_error_at is not None and (
                ingestor.last_successful_poll_at is None
                or ingestor.last_error_at > ingestor.last_successful_poll_at
            )
            degraded = (
                not delivery.kafka_connected
                or schedule.quota_exhausted_until is not None
                or last_poll_failed
            )
        return cls(
            status="degraded" if degraded else "ok",
            name=ingestor.spec.name,
            endpoint=ingestor.spec.endpoint,
            topic=ingestor.spec.topic,
            simulated=ingestor.settings.uses_coincap_simulator,
            poll_interval_seconds=schedule.interval_seconds,
            state=ingestor.state,
            desired_state=ingestor.desired.state,
            polls_succeeded=ingestor.polls_succeeded,
            polls_failed=ingestor.polls_failed,
            last_poll_id=ingestor.last_poll_id,
            last_successful_poll_at=ingestor.last_successful_poll_at,
            # Served to anyone who can reach the port: no key, token or credential in a URL.
            last_error=redact_secrets(ingestor.last_error, ingestor.settings),
            last_error_at=ingestor.last_error_at,
            quota_exhausted_until=schedule.quota_exhausted_until,
            kafka_connected=delivery.kafka_connected,
            buffered_records=buffered_records,
            dropped_records=delivery.dropped_records,
            dropped_poll_ids=list(delivery.dropped_poll_ids),
            spool_path=str(delivery.spool.path),
            spooled_polls=spool.polls if spool is not None else 0,
            spooled_records=spool.records if spool is not None else 0,
            spooled_bytes=spool.bytes if spool is not None else 0,
            spool_problem=redact_secrets(delivery.spool.problem, ingestor.settings),
        )
