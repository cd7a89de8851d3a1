"""Where the worker finds the jars that ``make setup`` fetched: Spark's Kafka source, and the
Cloud Storage connector for a ``gs://`` checkpoint.

The worker runs offline, so Spark must not resolve packages from Maven itself; setup copies each
connector's jars into a folder under ``cache_dir`` once, and the worker puts them on Spark's
classpath. The local deployment's setup writes to the folders this module names.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import WorkerSettings


class SparkJarsMissing(RuntimeError):
    """A connector's jars are not where setup puts them; the message says how to fetch them."""


def spark_kafka_jars_dir(settings: WorkerSettings) -> Path:
    """The folder setup fills with the Kafka connector and its dependencies."""
    return settings.cache_dir / "jars" / "spark-kafka"


def gcs_connector_jars_dir(settings: WorkerSettings) -> Path:
    """The folder setup fills with the (shaded, self-contained) Cloud Storage connector."""
    return settings.cache_dir / "jars" / "gcs-connector"


def _fetched_jars(folder: Path, what: str) -> list[Path]:
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise SparkJarsMissing(
            f"the {what} jars are missing from {folder}; "
            "run `make setup` (it needs network access to Maven Central once)"
        )
    return jars


def spark_kafka_jars(settings: WorkerSettings) -> list[Path]:
    """The jars Spark needs for its Kafka source, as fetched by setup."""
    return _fetched_jars(spark_kafka_jars_dir(settings), "Spark Kafka connector")


def worker_jars(settings: WorkerSettings) -> list[Path]:
    """Every jar the worker's session needs: the Kafka source, and the Cloud Storage connector
    only when the checkpoint is in Cloud Storage (local runs keep the classpath they had)."""
    jars = spark_kafka_jars(settings)
    if settings.checkpoint_in_cloud_storage:
        jars += _fetched_jars(gcs_connector_jars_dir(settings), "Cloud Storage connector")
    return jars
