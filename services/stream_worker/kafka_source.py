"""The options of the worker's Spark Kafka source: which topics, how much per batch, how securely.

The source runs on every executor (the consumers) and on the driver (offset lookups), which on
a cluster are different machines; so everything it needs travels in these options, and nothing
refers to a file of the driver's: the certificate authorities go inline (PEM), the SASL
credentials as a JAAS line. Spark redacts the JAAS line in its logs.
"""

from __future__ import annotations

from shared.settings import WorkerSettings

SASL_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kafka_security_options(settings: WorkerSettings) -> dict[str, str]:
    """The Kafka client properties for the security settings, prefixed as Spark wants them."""
    protocol = settings.kafka_security_protocol
    options: dict[str, str] = {"kafka.security.protocol": protocol}
    if protocol in ("SSL", "SASL_SSL") and settings.kafka_ssl_ca_file is not None:
        options |= {
            "kafka.ssl.truststore.type": "PEM",
            "kafka.ssl.truststore.certificates": settings.kafka_ssl_ca_file.read_text(),
        }
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username is not None and settings.kafka_sasl_password
        module = SASL_LOGIN_MODULES[settings.kafka_sasl_mechanism]
        username = _jaas_quoted(settings.kafka_sasl_username)
        password = _jaas_quoted(settings.kafka_sasl_password.get_secret_value())
        options |= {
            "kafka.sasl.mechanism": settings.kafka_sasl_mechanism,
            "kafka.sasl.jaas.config": (
                f"{module} required username={username} password={password};"
            ),
        }
    return options


FETCH_MAX_WAIT_MS = 10
"""How long the broker may park a fetch that finds nothing new (Kafka's default: 500 ms).

Each of a batch's tasks reads its offset range up to the log's end, so its consumer's last fetch
finds nothing and waits out this limit; the partition's offset range, which Spark asks for after
every poll, queues behind it on the same connection. On ``local[2]`` with 6 to 9 tasks a batch,
that was most of a steady batch: ``python -m bench.batch_profile --batches 12 --warmup 2``, back
to back on a quiet 2-core machine, gave a median ``spark.collect.batch`` of 1.966 s at 500 ms
and 0.479 s at 10 ms, the whole batch 2.852 s and 1.328 s. The rest of Kafka's fetch settings
stay at their defaults: ``fetch.min.bytes`` 1 already answers as soon as anything is there, and
the size limits (``fetch.max.bytes``, ``max.partition.fetch.bytes``) are far above a batch."""


def kafka_source_options(settings: WorkerSettings) -> dict[str, str]:
    """Every option of the worker's ``readStream.format("kafka")``."""
    return {
        "kafka.bootstrap.servers": settings.kafka_bootstrap_servers,
        "subscribe": f"{settings.topic_assets},{settings.topic_exchanges},{settings.topic_history}",
        "startingOffsets": "earliest",
        "maxOffsetsPerTrigger": str(settings.stream_max_records_per_batch),
        # Off by default: records retention deleted first are skipped, and the worker counts
        # them (``data_loss``); on, the query fails on them at every start.
        "failOnDataLoss": str(settings.stream_fail_on_data_loss).lower(),
        "kafka.fetch.max.wait.ms": str(FETCH_MAX_WAIT_MS),
        **kafka_security_options(settings),
    }
