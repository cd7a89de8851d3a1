"""Kafka as every client sees it: the brokers, how to connect, the topics and the worker's
consumer group."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings.common import CommonSettings


class KafkaSettings(CommonSettings):
    """The brokers and how to connect to them, the topics and how they are created, and the
    consumer group the stream worker commits to (the control service measures lag from it)."""

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Kafka bootstrap servers, comma separated. The local stack runs one Kafka"
        " node per server listed ([several "
        "nodes](scaling.md#a-three-broker-kafka-on-this-machine)).",
    )
    topic_assets: str = Field(
        default="coincap.assets.v1",
        description="Topic of asset records.",
    )
    topic_exchanges: str = Field(
        default="coincap.exchanges.v1",
        description="Topic of exchange records.",
    )
    topic_history: str = Field(
        default="coincap.asset_history",
        description="Topic of backfilled asset history points (`coinstream backfill`, "
        "[backfill](backfill.md)).",
    )
    topic_deadletter: str = Field(
        default="coincap.deadletter.v1",
        description="Topic of records that failed validation, with the reason.",
    )
    topic_control: str = Field(
        default="coinstream.control.v1",
        description="Compacted topic of the desired state of each component (key: component).",
    )
    topic_partitions: int = Field(
        default=3,
        ge=1,
        description="Partitions of each topic, when coinstream creates it.",
    )
    topic_replication_factor: int = Field(
        default=1,
        ge=1,
        description="Replication factor of each topic, when coinstream creates it.",
    )
    topic_min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="`min.insync.replicas` of each topic coinstream creates: how many "
        "replicas must hold a record before an `acks=all` producer hears it is "
        "stored. At most the replication factor; 2 with 3 replicas.",
    )
    topic_retention_hours: int = Field(
        default=168,
        ge=1,
        description="Retention of the record topics, in hours.",
    )
    deadletter_retention_hours: int = Field(
        default=720,
        ge=1,
        description="Retention of the dead-letter topic, in hours.",
    )
    kafka_compression: Literal["gzip", "none"] = Field(
        default="gzip",
        description="Producer compression codec (`gzip` or `none`).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How every Kafka client connects (ingestors, stream worker and its Spark "
        "source, control service): `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or "
        "`SASL_SSL` ([managed Kafka](scaling.md#a-managed-kafka)).",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN",
        description="SASL mechanism with a `SASL_*` protocol: `PLAIN`, `SCRAM-SHA-256` or "
        "`SCRAM-SHA-512`.",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        description="SASL user name (an API key on some managed services); required with `SASL_*`.",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        description="SASL password (secret; an API secret on some managed services); required"
        " with `SASL_*`.",
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities to trust with `SSL` and "
        "`SASL_SSL`; Spark's executors get its contents, not its path. Unset: the"
        " system's.",
    )
    stream_consumer_group: str = Field(
        default="coinstream-stream-worker",
        description="Kafka consumer group the worker commits processed offsets to, for lag.",
    )

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

    @model_validator(mode="after")
    def _kafka_settings_agree(self) -> KafkaSettings:
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

    @property
    def kafka_listener(self) -> tuple[str, int]:
        """Host and port the local broker listens on: the first bootstrap server."""
        host, _, port = self.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
        return host, int(port)
