"""Where the worker finds the Spark Kafka connector jars that ``make setup`` fetched.

The worker runs offline, so Spark must not resolve packages from Maven itself; setup copies the
connector's jars into a folder under ``cache_dir`` once, and the worker puts them on Spark's
classpath. The local deployment's setup writes to the folder this module names.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings


class SparkKafkaJarsMissing(RuntimeError):
    """The connector jars are not where setup puts them; the message says how to fetch them."""


def spark_kafka_jars_dir(settings: Settings) -> Path:
    """The folder setup fills with the connector and its dependencies."""
    return settings.cache_dir / "jars" / "spark-kafka"


def spark_kafka_jars(settings: Settings) -> list[Path]:
    """The jars Spark needs for its Kafka source, as fetched by setup."""
    jars = sorted(spark_kafka_jars_dir(settings).glob("*.jar"))
    if not jars:
        raise SparkKafkaJarsMissing(
            f"the Spark Kafka connector jars are missing from {spark_kafka_jars_dir(settings)}; "
            "run `make setup` (it needs network access to Maven Central once)"
        )
    return jars
