"""The worker's SparkSession: local, UTC, offline (the Kafka connector jars come from ``jars``)."""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from shared.settings import Settings


def build_spark_session(settings: Settings, app_name: str, jars: list[Path]) -> SparkSession:
    """A local SparkSession for the worker (or a test), with ``jars`` on its classpath."""
    # Without this Spark warns that the hostname resolves to a loopback address.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master("local[2]")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        # One shuffle partition per core: a micro-batch is small, and every extra partition is
        # a task to schedule on two cores.
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "true")
        # Arrow makes toArrow() and the warehouse load fast.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if jars:
        builder = builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
