"""What the control service's endpoints take and answer; OpenAPI is generated from these."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.control_state import Desired


class ObservedState(StrEnum):
    """What a component is doing, as its ``/healthz`` says (or fails to say)."""

    STARTING = "STARTING"
    """Up, not working yet (reading its desired state, or starting Spark)."""
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    """It says it failed, or its ``/healthz`` answered something other than its state."""
    UNREACHABLE = "UNREACHABLE"
    """Its ``/healthz`` did not answer (process down, or not started)."""


class Command(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    START = "start"
    RESTART = "restart"


# --- errors -----------------------------------------------------------------------------------


class Problem(BaseModel):
    """Every error answer: ``detail`` says what is wrong and what to do."""

    detail: str = Field(examples=["unknown component 'foo'; use one of: asset-ingestor, ..."])


class FieldProblem(BaseModel):
    location: list[str | int] = Field(description="Where in the request, e.g. [body, reason].")
    message: str
    type: str


class ValidationProblem(Problem):
    """A request that does not match the schema (HTTP 422)."""

    errors: list[FieldProblem]


# --- health -----------------------------------------------------------------------------------


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
    service: Literal["control"] = "control"
    open_access: bool = Field(
        description="True when mutating endpoints need no token (loopback-only open mode)."
    )


class DependencyCheck(BaseModel):
    ok: bool
    target: str = Field(description="What was asked (bootstrap servers, warehouse endpoint).")
    detail: str | None = Field(default=None, description="Why it failed, and what to do.")
    seconds: float = Field(description="How long the check took.")


class KafkaClusterHealth(BaseModel):
    """The replication of the record topics, as the cluster's metadata says now."""

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="ok: every replica in sync; degraded: a broker is missing or a replica "
        "lags, but every partition still takes writes; unavailable: a partition has no leader "
        "or fewer in-sync replicas than min.insync.replicas, so acks=all writes to it fail."
    )
    detail: str | None = Field(description="What is wrong, and what to do; null when ok.")
    brokers: list[int] = Field(description="Ids of the brokers the cluster counts as alive.")
    missing_brokers: list[int] = Field(
        description="Ids of brokers that hold replicas of the record topics but are not alive."
    )
    partitions: int = Field(description="Partitions of the record topics.")
    under_replicated_partitions: int = Field(
        description="Partitions with fewer in-sync replicas than replicas."
    )
    unwritable_partitions: int = Field(
        description="Partitions with no leader, or fewer in-sync replicas than "
        "COINSTREAM_TOPIC_MIN_INSYNC_REPLICAS."
    )


class Readiness(BaseModel):
    status: Literal["ready", "unready"]
    detail: str | None = Field(
        default=None, description="Names each failing dependency; null when ready."
    )
    kafka: DependencyCheck
    warehouse: DependencyCheck
    kafka_cluster: KafkaClusterHealth | None = Field(
        default=None,
        description="Replication of the record topics; null when Kafka did not answer. A "
        "degraded cluster is still ready; an unavailable one is not.",
    )


# --- components -------------------------------------------------------------------------------


class ComponentStatus(BaseModel):
    """One component: what it should do, what it does, and how its work is going."""

    name: str = Field(examples=["asset-ingestor"])
    desired_state: Desired
    observed_state: ObservedState
    in_sync: bool = Field(description="True when observed_state equals desired_state.")
    restart_generation: int = Field(description="Restart commands given so far.")
    requested_by: str | None = Field(description="Who gave the last command (null: nobody).")
    requested_at: datetime | None
    reason: str | None
    health_url: str = Field(description="The component's /healthz, which was asked.")
    health_status: str | None = Field(
        description="The component's own ok/degraded verdict; null when it did not answer."
    )
    last_success_at: datetime | None = Field(
        description="Last successful poll (ingestors) or micro-batch (stream worker)."
    )
    last_error: str | None
    last_error_at: datetime | None
    checked_at: datetime
    restarts: int | None = Field(
        default=None,
        description="Times `make run` restarted the process after it exited (null: not run by "
        "`make run`, e.g. under Compose).",
    )
    last_exit_status: int | None = Field(
        default=None,
        description="Status of the process's last exit under `make run` (negative: the signal "
        "that ended it); null: none, or not run by `make run`.",
    )


class ComponentList(BaseModel):
    components: list[ComponentStatus]


class CommandRequest(BaseModel):
    """Optional body of a command: who is asking and why, stored with the desired state."""

    model_config = ConfigDict(extra="forbid")

    requested_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Who is asking (a person or a tool); defaults to the caller's address.",
        examples=["alice"],
    )
    reason: str | None = Field(
        default=None, max_length=500, examples=["CoinCap quota nearly spent"]
    )


class CommandAccepted(BaseModel):
    """A command was recorded; the component acts on it within seconds (HTTP 202)."""

    component: str
    command: Command
    desired_state: Desired
    restart_generation: int
    changed: bool = Field(
        description="False when the component already had this desired state (idempotent)."
    )
    requested_by: str | None
    requested_at: datetime | None
    message: str = Field(description="What happens next, and how to watch it.")


# --- lag and freshness ------------------------------------------------------------------------


class PartitionLag(BaseModel):
    partition: int
    log_start_offset: int
    log_end_offset: int
    committed_offset: int | None = Field(
        description="The group's committed offset (the next record it will process); null "
        "when the group has committed nothing for this partition."
    )
    lag_records: int = Field(
        description="log_end_offset minus the committed offset (minus log_start_offset when "
        "nothing is committed): records retained and not yet processed."
    )
    lag_seconds: float | None = Field(
        description="Age of the oldest unprocessed record (now minus its Kafka timestamp); 0 "
        "with no lag; null when it could not be read."
    )
    leader: int | None = Field(
        description="The broker serving the partition; null when none can (offline)."
    )
    in_sync_replicas: list[int] = Field(
        description="Brokers holding every acknowledged record; fewer than replicas while a "
        "broker is lost or catching up."
    )
    replicas: list[int] = Field(description="Brokers assigned a copy of the partition.")


class TopicLag(BaseModel):
    topic: str
    exists: bool
    lag_records: int
    lag_seconds: float | None = Field(description="The largest lag_seconds of its partitions.")
    partitions: list[PartitionLag]


class LagReport(BaseModel):
    group: str = Field(description="The stream worker's consumer group.")
    measured_at: datetime
    lag_records: int = Field(description="Total over every topic and partition.")
    topics: list[TopicLag]


class TableFreshness(BaseModel):
    table: str = Field(examples=["assets"])
    table_id: str
    exists: bool
    newest_processing_timestamp: datetime | None
    seconds_since_newest: float | None = Field(
        description="Now minus newest_processing_timestamp; null for an empty or missing table."
    )


class FreshnessReport(BaseModel):
    measured_at: datetime
    tables: list[TableFreshness]
