"""The native local stack (`make run`): its broker's own ports and heap, Prometheus, and how
its supervisor restarts processes."""

from __future__ import annotations

import shlex

from pydantic import Field, field_validator

from shared.settings.common import CommonSettings


class LocalStackSettings(CommonSettings):
    """What the native local stack's own processes need: its broker's ports, heap and JVM
    options, Prometheus's port and the supervisor's restart policy. No service reads them."""

    kafka_controller_port: int = Field(
        default=9093,
        description="KRaft controller port of the local node; with several local nodes, node "
        "N uses this port plus N-1.",
    )
    kafka_heap: str = Field(
        default="512m",
        description="Java heap size of the local broker.",
    )
    kafka_jvm_options: str = Field(
        default="",
        description="Extra JVM options of the local broker, space-separated (e.g. "
        "`-XX:+UseSerialGC`); empty keeps the JVM's own choices.",
    )
    prometheus_port: int = Field(
        default=9090,
        description="Port of the Prometheus that `make run` starts.",
    )
    run_restart_limit: int = Field(
        default=5,
        ge=1,
        description="`make run` restarts a process that exits, with delays growing from 1 s "
        "to 30 s, and stops everything when one exits this many times within "
        "`COINSTREAM_RUN_RESTART_WINDOW_SECONDS` ([make "
        "run](deploy.md#make-run)).",
    )
    run_restart_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The window in which `COINSTREAM_RUN_RESTART_LIMIT` exits of one process "
        "stop `make run`.",
    )

    @field_validator("kafka_jvm_options")
    @classmethod
    def _jvm_options_split(cls, value: str) -> str:
        try:
            options = shlex.split(value)
        except ValueError as error:  # an unclosed quote
            raise ValueError(f"cannot split into JVM options: {error}") from None
        if any(not option.startswith("-") for option in options):
            raise ValueError("each JVM option starts with '-'; the broker's class path is ours")
        return value
