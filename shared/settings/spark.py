"""Spark under the stream worker: its master, memory and cores, and the local standalone
cluster `make run` may start."""

from __future__ import annotations

import json
import re

from pydantic import Field, field_validator

from shared.settings.common import CommonSettings

SPARK_MASTER = re.compile(
    r"local(\[(\d+|\*)(,\d+)?\])?|spark://[^/\s]+:\d+(,[^/\s]+:\d+)*|k8s://\S+|yarn"
)
"""The Spark masters the worker can run on: local threads, standalone, Kubernetes, YARN."""


class SparkSettings(CommonSettings):
    """Where the stream worker's Spark runs and how big it is. The local cluster's size and
    ports are here, not with the local stack, because the worker's master defaults to it."""

    spark_master: str | None = Field(
        default=None,
        description="Spark master of the stream worker: `local[N]`, `spark://host:port` "
        "(standalone), `k8s://https://host:port` or `yarn` ([Spark on a "
        "cluster](scaling.md#spark-on-a-cluster)). Unset: `local[2]`, or the "
        "local standalone cluster when `COINSTREAM_LOCAL_SPARK_WORKERS` is above "
        "0.",
    )
    spark_driver_memory: str = Field(
        default="1g",
        description="Spark driver memory.",
    )
    spark_executor_memory: str = Field(
        default="1g",
        description="Memory of each Spark executor on a cluster master (and what each local "
        "standalone worker offers).",
    )
    spark_executor_cores: int = Field(
        default=1,
        ge=1,
        description="Cores of each Spark executor on a cluster master (and what each local "
        "standalone worker offers).",
    )
    spark_executor_instances: int = Field(
        default=2,
        ge=1,
        description="Executors the worker asks a cluster for; on standalone it takes at most "
        "this many times `COINSTREAM_SPARK_EXECUTOR_CORES` cores. Local masters "
        "ignore it.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark properties as a JSON object, applied last, e.g. "
        '`{"spark.kubernetes.container.image": "..."}`.',
    )
    local_spark_workers: int = Field(
        default=0,
        ge=0,
        description="Workers of the Spark standalone cluster `make run` starts on loopback "
        "(one executor each); 0 starts none. Above 0, the stream worker runs on "
        "it unless `COINSTREAM_SPARK_MASTER` names another.",
    )
    local_spark_master_port: int = Field(
        default=7077,
        description="Port of the local standalone master; worker N listens on this port plus N.",
    )
    local_spark_master_ui_port: int = Field(
        default=8180,
        description="Web UI port of the local standalone master (its `/json/` status too); "
        "worker N's is this port plus N.",
    )

    @field_validator("spark_master")
    @classmethod
    def _spark_master_is_known(cls, value: str | None) -> str | None:
        if value is None or SPARK_MASTER.fullmatch(value):
            return value
        raise ValueError(
            "COINSTREAM_SPARK_MASTER must be local[N], spark://host:port, "
            f"k8s://https://host:port or yarn, got {value!r}"
        )

    @field_validator("spark_conf", mode="before")
    @classmethod
    def _spark_conf_from_json(cls, value: object) -> object:
        # A JSON string when it comes from a mapping of variables rather than the environment.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"COINSTREAM_SPARK_CONF must be a JSON object, got {value!r} ({error})"
                ) from None
        return value

    @property
    def spark_master_url(self) -> str:
        """The master the stream worker's session connects to (see ``spark_master``)."""
        if self.spark_master:
            return self.spark_master
        if self.local_spark_workers:
            return f"spark://127.0.0.1:{self.local_spark_master_port}"
        return "local[2]"

    @property
    def spark_runs_on_cluster(self) -> bool:
        """True when executors are processes of their own, not threads of the worker's JVM."""
        return not self.spark_master_url.startswith("local")
