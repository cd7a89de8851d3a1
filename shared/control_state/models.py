"""A component's desired state as the control topic stores it, and the topic itself."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.kafka import TopicSpec
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("asset-ingestor", "exchange-ingestor", "stream-worker")
"""Every component the control service commands, by the name used as the record key."""


class Desired(StrEnum):
    """What a component should be doing.

    RUNNING: working. PAUSED: alive and connected, doing no work (an ingestor does not poll, so
    spends no API credits; the worker consumes nothing). STOPPED: alive only to answer
    ``/healthz`` and to follow this topic; it has also released its Kafka producer or query.
    """

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


class DesiredState(BaseModel):
    """One component's desired state, as stored in the control topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = 1
    component: str = Field(description="The component's name, also the record key.")
    state: Desired = Field(default=Desired.RUNNING, description="What it should be doing.")
    restart_generation: int = Field(
        default=0,
        ge=0,
        description="Grows by one with each restart command; a component that sees it grow "
        "restarts its work once.",
    )
    requested_by: str | None = Field(default=None, description="Who gave the last command.")
    requested_at: datetime | None = Field(default=None, description="When it was given.")
    reason: str | None = Field(default=None, description="Why, as the requester said.")

    @classmethod
    def default(cls, component: str) -> DesiredState:
        """The state of a component nobody has commanded: RUNNING."""
        return cls(component=component)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None) -> DesiredState | None:
        """Parse a control record; a tombstone (no value) resets the key's component to the
        default. None for a record that cannot be understood (logged)."""
        if key is None:
            logger.warning("control record without a key ignored")
            return None
        component = key.decode(errors="replace")
        if value is None:
            return cls.default(component)
        try:
            state = cls.model_validate_json(value)
        except ValidationError as error:
            logger.warning("control record for %s ignored: %s", component, error)
            return None
        if state.component != component:
            logger.warning(
                "control record keyed %s names component %s; ignored", component, state.component
            )
            return None
        return state


def restart_requested(started_under: int, desired: DesiredState) -> bool:
    """True when ``desired`` asks for a restart of work started under generation
    ``started_under``: the one comparison the ingestors and the stream worker both make.

    Any change counts, not only growth: a tombstone or a re-created control topic resets the
    generation to 0, and a component comparing with ``>`` would then ignore every restart
    until the counter passed its old value again.
    """
    return desired.restart_generation != started_under


def control_topic(settings: KafkaSettings) -> TopicSpec:
    """The compacted control topic: one partition, so one read shows every component in order."""
    return TopicSpec(
        settings.topic_control,
        partitions=1,
        replication_factor=settings.topic_replication_factor,
        retention_hours=None,
        compact=True,
        min_insync_replicas=settings.topic_min_insync_replicas,
    )


def with_defaults(states: Mapping[str, DesiredState]) -> dict[str, DesiredState]:
    return {
        **{component: DesiredState.default(component) for component in COMPONENTS},
        **states,
    }
