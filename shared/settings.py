"""Every coinstream setting, read once from the environment (prefix ``COINSTREAM_``) or ``.env``.

One class holds them all so that a service, a test and the local stack agree on ports, names and
credentials without passing them around by hand. docs/settings.md has a table of every field here.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPARK_MASTER = re.compile(
    r"local(\[(\d+|\*)(,\d+)?\])?|spark://[^/\s]+:\d+(,[^/\s]+:\d+)*|k8s://\S+|yarn"
)
"""The Spark masters the worker can run on: local threads, standalone, Kubernetes, YARN."""


class Settings(BaseSettings):
    """coinstream configuration; field names map to ``COINSTREAM_<NAME>`` variables."""

    model_config = SettingsConfigDict(
        env_prefix="COINSTREAM_",
        # COINSTREAM_ENV_FILE picks another file (tests point it at /dev/null).
        env_file=os.environ.get("COINSTREAM_ENV_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated. The local broker listens on the "
        "first one.",
    )
    kafka_controller_port: int = Field(
        default=9093,
        description="KRaft controller port of the local broker; with several local brokers, "
        "broker N uses this port plus N-1.",
    )
    kafka_heap: str = Field(default="512m", description="Java heap size of the local broker.")
    topic_assets: str = Field(default="coincap.assets.v1", description="Topic of asset records.")
    topic_exchanges: str = Field(
        default="coincap.exchanges.v1", description="Topic of exchange records."
    )
    topic_history: str = Field(
        default="coincap.asset_history",
        description="Topic of backfilled asset history points (`coinstream backfill`).",
    )
    topic_deadletter: str = Field(
        default="coincap.deadletter.v1",
        description="Topic of records that failed validation, with the reason.",
    )
    topic_partitions: int = Field(
        default=3, ge=1, description="Partitions of each topic, when coinstream creates it."
    )
    topic_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of each topic, when coinstream creates it."
    )
    topic_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="min.insync.replicas of each topic coinstream creates: with acks=all, how "
        "many replicas must hold a record before the producer is told it is stored.",
    )
    topic_retention_hours: int = Field(
        default=168, ge=1, description="Retention of the record topics, in hours."
    )
    deadletter_retention_hours: int = Field(
        default=720, ge=1, description="Retention of the dead-letter topic, in hours."
    )
    kafka_compression: Literal["gzip", "none"] = Field(
        default="gzip", description="Producer compression codec."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every coinstream Kafka client connects (ingestors, stream worker and "
        "its Spark source, control service). A managed Kafka usually wants SASL_SSL.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism, with a SASL_* security protocol."
    )
    kafka_sasl_username: str | None = Field(
        default=None, description="SASL user name (an API key on some managed services)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (an API secret on some managed services)."
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities to trust for SSL and SASL_SSL. "
        "Unset: the system's.",
    )

    # --- Warehouse ---------------------------------------------------------------------------
    gcp_project: str | None = Field(
        default=None,
        description="GCP project for real BigQuery (Application Default Credentials). "
        "Unset: the local BigQuery emulator is the warehouse.",
    )
    bigquery_dataset: str = Field(default="coinstream", description="BigQuery dataset name.")
    bigquery_location: str = Field(default="US", description="BigQuery dataset location.")
    bigquery_emulator_url: str = Field(
        default="http://127.0.0.1:9050",
        description="BigQuery emulator REST endpoint, used when gcp_project is unset.",
    )
    bigquery_emulator_grpc_port: int = Field(
        default=9060, description="gRPC port of the local BigQuery emulator."
    )
    bigquery_emulator_project: str = Field(
        default="coinstream-local", description="Project name inside the local BigQuery emulator."
    )
    bigquery_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Timeout of one BigQuery API call, and the deadline for retrying it.",
    )
    table_partition_expiration_days: int | None = Field(
        default=None, description="Partition expiration of the tables in days; unset keeps all."
    )
    warehouse_schema_owner: Literal["worker", "terraform"] | None = Field(
        default=None,
        description="Who creates the dataset, tables and views: `worker` (the stream worker, at "
        "start) or `terraform` (the worker only checks that they match the code, and stops if "
        "not). Unset: worker on the emulator, terraform on GCP.",
    )

    # --- CoinCap -----------------------------------------------------------------------------
    coincap_api_key: SecretStr | None = Field(
        default=None,
        description="CoinCap v3 API key. Unset: ingestors poll the bundled simulator.",
    )
    coincap_base_url: str = Field(
        default="https://rest.coincap.io/v3",
        description="CoinCap API base URL, used when an API key is set.",
    )
    coincap_simulator_port: int = Field(
        default=8090, description="Port of the bundled CoinCap simulator (no API key set)."
    )
    coincap_simulator_host: str = Field(
        default="127.0.0.1",
        description="Host of the bundled CoinCap simulator (its service name under compose).",
    )
    coincap_page_limit: int = Field(
        default=2000, ge=1, le=2000, description="Records per CoinCap request (API maximum 2000)."
    )
    coincap_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one CoinCap HTTP request."
    )
    coincap_max_response_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest CoinCap response body read; a larger one is refused (counted, "
        "reading stops at the limit) instead of filling memory.",
    )
    coincap_max_retries: int = Field(
        default=5, ge=0, description="Retries of a CoinCap request on 5xx, 429, connection errors."
    )
    coincap_monthly_credits: int = Field(
        default=2500,
        ge=1,
        description="CoinCap credits the API key may spend a month; the two ingestors share them "
        "equally and poll no faster than that allows.",
    )
    coincap_credits_per_call: float = Field(
        default=1.0, gt=0, description="CoinCap credits one API call costs."
    )
    backfill_max_points_per_window: int = Field(
        default=2000,
        ge=1,
        description="Most history points one `coinstream backfill` request asks CoinCap for: "
        "a range is split into windows of this many intervals (CoinCap's limit is not "
        "documented reliably; lower it if CoinCap answers a window with an error).",
    )
    poll_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between polls. Unset: derived from the credit budget (real API) or "
        "5 s (simulator). Set: used as given, with a warning if it overruns the budget.",
    )
    quota_pause_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How long an ingestor stops polling after CoinCap says the quota is spent "
        "(when the answer gives no Retry-After).",
    )
    quota_pause_max_seconds: float = Field(
        default=86_400.0,
        gt=0,
        le=31_622_400,
        description="The longest quota pause an ingestor takes, whatever CoinCap's Retry-After "
        "says (a Retry-After of 1e12 is a broken answer, not a plan): after it, one poll asks "
        "again. At most 366 days.",
    )
    snapshot_time_window_hours: float = Field(
        default=720.0,
        gt=0,
        description="How far from now (either way) a snapshot's time (CoinCap's page `timestamp`) "
        "may be: a page outside it is malformed at ingest, and the worker quarantines a row "
        "outside it. At least COINSTREAM_TOPIC_RETENTION_HOURS, so a backlog still in Kafka "
        "is never quarantined for its age.",
    )
    ingest_buffer_max_records: int = Field(
        default=100_000,
        ge=1,
        description="Records an ingestor holds while Kafka is unreachable; beyond it the oldest "
        "polls are dropped, counted and logged. At least COINSTREAM_COINCAP_PAGE_LIMIT.",
    )
    ingest_max_polls_in_flight: int = Field(
        default=8,
        ge=1,
        description="Polls an ingestor hands to Kafka before the oldest is acknowledged, so "
        "ingest is not bound by one broker round trip per poll; 1 waits for each poll.",
    )
    ingest_spool_dir: Path | None = Field(
        default=None,
        description="Folder of the ingestors' durable spools, one SQLite file per ingestor "
        "name: a poll is written there before it counts as fetched and removed once Kafka "
        "has acknowledged it, so a killed ingestor delivers it when it starts again. Unset: "
        "<state_dir>/ingest-spool.",
    )
    ingest_spool_max_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of messages an ingestor holds in its spool (and buffer) while Kafka "
        "is unreachable; beyond it the oldest polls are dropped, counted and logged "
        "(reason spool_full).",
    )
    shutdown_flush_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a stopping ingestor tries to deliver what it holds.",
    )
    asset_ingestor_port: int = Field(
        default=8101, description="HTTP port of the asset ingestor (/healthz, /metrics)."
    )
    exchange_ingestor_port: int = Field(
        default=8102, description="HTTP port of the exchange ingestor (/healthz, /metrics)."
    )
    stream_worker_port: int = Field(
        default=8103, description="HTTP port of the stream worker (/healthz, /metrics)."
    )
    stream_trigger_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between micro-batches. Local default 5; Terraform sets 10 for "
        "BigQuery (a batch without rows writes nothing; docs/gcp.md).",
    )
    stream_max_records_per_batch: int = Field(
        default=100_000, ge=1, description="Most Kafka records one micro-batch reads."
    )
    stream_checkpoint_location: str | None = Field(
        default=None,
        description="Spark checkpoint folder (a local path, or gs://bucket/path in the cloud). "
        "Unset: <state_dir>/checkpoints/stream-worker.",
    )
    gcs_emulator_url: str | None = Field(
        default=None,
        description="Cloud Storage endpoint for a gs:// checkpoint, used without credentials "
        "(a local GCS emulator). Unset: Google Cloud Storage with Application Default "
        "Credentials.",
    )
    stream_checkpoint_lease_seconds: float = Field(
        default=60.0,
        ge=3,
        description="How long the stream worker's lease on a gs:// checkpoint outlives its "
        "last renewal: a worker that died without releasing it keeps others off the checkpoint "
        "this long. The holder renews every third of it and stops its query when it could not "
        "for 60 % of it. A local checkpoint's lease is a file lock, freed when its process ends.",
    )
    stream_consumer_group: str = Field(
        default="coinstream-stream-worker",
        description="Kafka consumer group the worker commits processed offsets to, for lag.",
    )
    stream_dedup_horizon_hours: int = Field(
        default=48,
        ge=1,
        description="Slack of the MERGE's look-back: a micro-batch looks for rows it would "
        "duplicate among those processed since its oldest record's source time minus this "
        "(clock skew), so a replay of old records stays exactly once; bounds the partitions "
        "each MERGE scans.",
    )
    stream_sink: Literal["merge", "storage-write"] = Field(
        default="merge",
        description="How the stream worker writes each micro-batch: merge (a MERGE on the "
        "key per table; a record published twice is stored once) or storage-write "
        "(append through a Storage Write API pending stream committed atomically; scans "
        "nothing per batch, a record published twice is stored twice and read once).",
    )
    stream_fail_on_data_loss: bool = Field(
        default=False,
        description="Stop the stream worker when Kafka deleted records it had not read yet "
        "(retention ran past it). False: go on, counting each lost range in a metric, a log "
        "line and a quarantine row.",
    )
    worker_fault_point: Literal["after-merge", "after-commit"] | None = Field(
        default=None,
        description="Fault injection, for tests only: SIGKILL the stream worker (Spark's JVM "
        "and itself) in its first batch with rows, after the warehouse MERGE (after-merge) or "
        "after the Kafka offset commit (after-commit), before Spark commits the batch.",
    )
    spark_driver_memory: str = Field(default="1g", description="Spark driver memory.")
    spark_master: str | None = Field(
        default=None,
        description="Spark master of the stream worker: local[N], spark://host:port "
        "(standalone), k8s://https://host:port or yarn. Unset: local[2], or the standalone "
        "cluster `make run` starts when local_spark_workers is above 0.",
    )
    spark_executor_memory: str = Field(
        default="1g", description="Memory of each Spark executor (on a cluster master)."
    )
    spark_executor_cores: int = Field(
        default=1, ge=1, description="Cores of each Spark executor (on a cluster master)."
    )
    spark_executor_instances: int = Field(
        default=2,
        ge=1,
        description="Executors the worker asks a cluster for (standalone: it takes at most "
        "this many times spark_executor_cores cores). Local masters ignore it.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description="Further Spark properties as a JSON object, applied last, e.g. "
        '{"spark.kubernetes.container.image": "..."}.',
    )
    local_spark_workers: int = Field(
        default=0,
        ge=0,
        description="Workers of the Spark standalone cluster `make run` starts on loopback "
        "(each with one executor of spark_executor_cores and spark_executor_memory); 0 starts "
        "none.",
    )
    local_spark_master_port: int = Field(
        default=7077,
        description="Port of the local standalone master; worker N listens on this port plus N.",
    )
    local_spark_master_ui_port: int = Field(
        default=8180,
        description="Web UI port of the local standalone master; worker N's is this port plus N.",
    )
    bind_host: str = Field(
        default="127.0.0.1",
        description="Address the services listen on (0.0.0.0 inside containers).",
    )

    # --- Control service and Prometheus ------------------------------------------------------
    control_port: int = Field(
        default=8100, description="HTTP port of the control service (API, /healthz, /metrics)."
    )
    control_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token the control service's mutating endpoints require (secret). "
        "Unset: the service refuses to start unless COINSTREAM_CONTROL_ALLOW_OPEN is set; "
        "`make run` generates one into <state_dir>/control-token.",
    )
    control_allow_open: bool = Field(
        default=False,
        description="Let the control service run with no token, mutating endpoints open to "
        "anyone who reaches it; honoured only when COINSTREAM_BIND_HOST is a loopback address.",
    )
    control_allowed_hosts: str = Field(
        default="",
        description="Host names, comma-separated, under which the control service accepts "
        "commands besides localhost, 127.0.0.1, ::1 and the bind address (e.g. its DNS name "
        "behind a proxy); any other Host header is refused (DNS rebinding).",
    )
    control_answer_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long the control service reuses one measurement of /lag, /freshness "
        "and /readyz for every request (at most one measurement of each runs at a time).",
    )
    topic_control: str = Field(
        default="coinstream.control.v1",
        description="Compacted topic of the desired state of each component (key: component).",
    )
    control_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the control service refreshes component state and lag metrics.",
    )
    control_freshness_refresh_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often the control service queries the warehouse for freshness metrics "
        "(each refresh is one small query per table).",
    )
    asset_ingestor_url: str | None = Field(
        default=None,
        description="Where the control service reaches the asset ingestor. Unset: "
        "http://127.0.0.1:<asset_ingestor_port>.",
    )
    exchange_ingestor_url: str | None = Field(
        default=None,
        description="Where the control service reaches the exchange ingestor. Unset: "
        "http://127.0.0.1:<exchange_ingestor_port>.",
    )
    stream_worker_url: str | None = Field(
        default=None,
        description="Where the control service reaches the stream worker. Unset: "
        "http://127.0.0.1:<stream_worker_port>.",
    )
    control_url: str | None = Field(
        default=None,
        description="Where the `coinstream` command reaches the control service. Unset: "
        "http://127.0.0.1:<control_port>.",
    )
    prometheus_port: int = Field(
        default=9090, description="Port of the Prometheus that `make run` starts."
    )

    # --- Dashboard and Looker Studio ----------------------------------------------------------
    dashboard_port: int = Field(
        default=8200, description="HTTP port of the web dashboard (page, JSON API, /healthz)."
    )
    looker_template_report_id: str | None = Field(
        default=None,
        description="Looker Studio report to copy when `make looker-url` builds its link "
        "(c.reportId). Unset: a blank report with the coinstream views as its data sources.",
    )

    # --- Local stack -------------------------------------------------------------------------
    state_dir: Path = Field(
        default=PROJECT_ROOT / ".state",
        description="Where the local broker and emulator keep their data (survives restarts).",
    )
    cache_dir: Path = Field(
        default=PROJECT_ROOT / ".cache",
        description="Where setup puts downloaded jars; runs after setup need no network.",
    )
    run_restart_limit: int = Field(
        default=5,
        ge=1,
        description="`make run` restarts a process that exits, with delays growing from 1 s to "
        "30 s, and stops everything when one exits this many times within "
        "run_restart_window_seconds.",
    )
    run_restart_window_seconds: float = Field(
        default=300.0,
        gt=0,
        description="The window in which run_restart_limit exits of one process stop `make run`.",
    )
    log_level: str = Field(default="INFO", description="Log level of every coinstream service.")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_has_port(cls, value: str) -> str:
        first = value.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS must be host:port[,host:port...], "
                f"got {value!r}"
            )
        return value

    @field_validator("bigquery_emulator_url")
    @classmethod
    def _emulator_url_has_port(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or parts.port is None:
            raise ValueError(
                "COINSTREAM_BIGQUERY_EMULATOR_URL must look like http://127.0.0.1:9050, "
                f"got {value!r}"
            )
        return value.rstrip("/")

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

    @field_validator(
        "asset_ingestor_url", "exchange_ingestor_url", "stream_worker_url", "control_url"
    )
    @classmethod
    def _component_url_is_http(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"COINSTREAM_{str(info.field_name).upper()} must look like "
                f"http://asset-ingestor:8101, got {value!r}"
            )
        return value.rstrip("/")

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

    @model_validator(mode="after")
    def _kafka_settings_agree(self) -> Settings:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                "COINSTREAM_TOPIC_MIN_INSYNC_REPLICAS "
                f"({self.topic_min_insync_replicas}) is above COINSTREAM_TOPIC_REPLICATION_FACTOR "
                f"({self.topic_replication_factor}): no record could ever be stored"
            )
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"COINSTREAM_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}; set "
                "COINSTREAM_KAFKA_SASL_USERNAME and COINSTREAM_KAFKA_SASL_PASSWORD too"
            )
        return self

    @model_validator(mode="after")
    def _snapshot_window_covers_retention(self) -> Settings:
        if self.snapshot_time_window_hours < self.topic_retention_hours:
            raise ValueError(
                f"COINSTREAM_SNAPSHOT_TIME_WINDOW_HOURS ({self.snapshot_time_window_hours:g}) is "
                f"shorter than COINSTREAM_TOPIC_RETENTION_HOURS ({self.topic_retention_hours}): "
                "the worker would quarantine records still in Kafka for their age; raise the "
                "window to at least the retention"
            )
        return self

    @model_validator(mode="after")
    def _ingest_buffer_holds_a_poll(self) -> Settings:
        # A buffer smaller than one page of records would drop every poll that arrives while
        # the one before it is still being delivered: all of them while Kafka is down.
        if self.ingest_buffer_max_records < self.coincap_page_limit:
            raise ValueError(
                f"COINSTREAM_INGEST_BUFFER_MAX_RECORDS ({self.ingest_buffer_max_records}) is "
                f"smaller than one poll's page of records (COINSTREAM_COINCAP_PAGE_LIMIT, "
                f"{self.coincap_page_limit}), so polls would be dropped whenever Kafka is slow; "
                f"raise it to at least {self.coincap_page_limit}"
            )
        return self

    @property
    def uses_bigquery_emulator(self) -> bool:
        """True when no GCP project is set, so the warehouse is the local emulator."""
        return self.gcp_project is None

    @property
    def worker_owns_warehouse_schema(self) -> bool:
        """True when the stream worker creates the dataset, tables and views at start.

        One owner per environment: on the emulator nothing else would create them; on GCP
        Terraform creates them from the same generated files, and the worker only checks them.
        """
        if self.warehouse_schema_owner is None:
            return self.uses_bigquery_emulator
        return self.warehouse_schema_owner == "worker"

    @property
    def checkpoint_in_cloud_storage(self) -> bool:
        """True when the Spark checkpoint lives in Cloud Storage (a ``gs://`` location)."""
        return self.checkpoint_location.startswith("gs://")

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

    @property
    def warehouse_project(self) -> str:
        """The project tables live in: the GCP project, or the emulator's own project name."""
        return self.gcp_project or self.bigquery_emulator_project

    @property
    def kafka_listener(self) -> tuple[str, int]:
        """Host and port the local broker listens on: the first bootstrap server."""
        host, _, port = self.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
        return host, int(port)

    @property
    def bigquery_emulator_port(self) -> int:
        port = urlsplit(self.bigquery_emulator_url).port
        assert port is not None  # guaranteed by the validator
        return port

    @property
    def ingest_spool_directory(self) -> Path:
        """Where the ingestors keep their durable spools (see ``ingest_spool_dir``)."""
        return self.ingest_spool_dir or self.state_dir / "ingest-spool"

    @property
    def checkpoint_location(self) -> str:
        """Where the stream worker keeps its Spark checkpoint."""
        if self.stream_checkpoint_location:
            return self.stream_checkpoint_location
        return str(self.state_dir / "checkpoints" / "stream-worker")

    @property
    def uses_coincap_simulator(self) -> bool:
        """True when no API key is set, so ingestors poll the bundled simulator."""
        return self.coincap_api_key is None

    @property
    def coincap_url(self) -> str:
        """The API the ingestors poll: CoinCap itself with a key, else the local simulator."""
        if self.uses_coincap_simulator:
            return f"http://{self.coincap_simulator_host}:{self.coincap_simulator_port}/v3"
        return self.coincap_base_url.rstrip("/")

    @property
    def component_urls(self) -> dict[str, str]:
        """Base URL of each component the control service watches, by component name."""
        return {
            "asset-ingestor": self.asset_ingestor_url
            or f"http://127.0.0.1:{self.asset_ingestor_port}",
            "exchange-ingestor": self.exchange_ingestor_url
            or f"http://127.0.0.1:{self.exchange_ingestor_port}",
            "stream-worker": self.stream_worker_url
            or f"http://127.0.0.1:{self.stream_worker_port}",
        }

    @property
    def control_allowed_host_names(self) -> list[str]:
        """COINSTREAM_CONTROL_ALLOWED_HOSTS as lower-case names."""
        return [
            name.strip().lower() for name in self.control_allowed_hosts.split(",") if name.strip()
        ]

    @property
    def bind_host_is_loopback(self) -> bool:
        """True when the services listen on loopback only, out of reach of other machines."""
        if self.bind_host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.bind_host).is_loopback
        except ValueError:
            return False


def load_settings_or_exit() -> Settings:
    """Settings for a service's entry point: a bad variable ends the process with one line."""
    try:
        return Settings()
    except ValidationError as error:
        print(f"coinstream: {describe_settings_error(error)}", file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests build their own ``Settings`` instead."""
    return Settings()


def describe_settings_error(error: ValidationError) -> str:
    """One line naming each bad ``COINSTREAM_`` variable and what is wrong with it."""
    problems = []
    for problem in error.errors():
        variable = "COINSTREAM_" + str(problem["loc"][0]).upper() if problem["loc"] else "settings"
        message = str(problem["msg"]).removeprefix("Value error, ")
        problems.append(message if variable in message else f"{variable}: {message}")
    return "invalid settings: " + "; ".join(problems)
