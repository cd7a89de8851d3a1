"""The worker's SparkSession: on the master the settings name, UTC, offline (the connector jars
come from ``jars``).

On a cluster master (standalone, Kubernetes, YARN) the worker is the driver, in client mode:
the ``foreachBatch`` function, so the transforms' collection and the warehouse writes, runs in
this process; executors only read Kafka and evaluate Spark SQL, which needs no Python of
theirs. The connector jars reach them through ``spark.jars``, which the driver serves.

A ``gs://`` checkpoint location brings in the Cloud Storage connector's file system; a local
one leaves the session exactly as it was without it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyspark.sql import SparkSession

from shared.settings import WorkerSettings

MIB = 2**20
DRIVER_LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")

# The Hadoop that pyspark ships (3.5) describes its own ``fs.gs.*`` defaults with size suffixes
# ("64m"), which the Cloud Storage connector reads as plain numbers and fails on; these are the
# connector's own defaults, as numbers.
GCS_SIZE_DEFAULTS = {
    "fs.gs.block.size": 64 * MIB,
    "fs.gs.rewrite.max.chunk.size": 512 * MIB,
    "fs.gs.outputstream.buffer.size": 8 * MIB,
    "fs.gs.inputstream.inplace.seek.limit": 8 * MIB,
    "fs.gs.inputstream.min.range.request.size": 2 * MIB,
}


def cloud_storage_config(settings: WorkerSettings) -> dict[str, str]:
    """Hadoop settings that make ``gs://`` paths the Cloud Storage connector's.

    Credentials: the connector uses ``GOOGLE_APPLICATION_CREDENTIALS`` (a key file) when set,
    else the VM's attached service account from the metadata server. With
    ``gcs_emulator_url`` it talks to that endpoint with no credentials at all.
    """
    config = {
        "fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        **{name: str(value) for name, value in GCS_SIZE_DEFAULTS.items()},
    }
    if settings.gcs_emulator_url:
        config |= {
            "fs.gs.storage.root.url": settings.gcs_emulator_url,
            "fs.gs.auth.service.account.enable": "false",
            "fs.gs.auth.null.enable": "true",
        }
    return config


def cluster_config(settings: WorkerSettings) -> dict[str, str]:
    """Executor sizing for a cluster master; nothing for a local one (its executor is the
    driver's own JVM)."""
    if not settings.spark_runs_on_cluster:
        return {}
    config = {
        "spark.executor.memory": settings.spark_executor_memory,
        "spark.executor.cores": str(settings.spark_executor_cores),
    }
    if settings.spark_master_url.startswith("spark://"):
        # A standalone master gives an application every free core unless capped.
        cores = settings.spark_executor_instances * settings.spark_executor_cores
        config["spark.cores.max"] = str(cores)
    else:
        config["spark.executor.instances"] = str(settings.spark_executor_instances)
    return config


def build_spark_session(settings: WorkerSettings, app_name: str, jars: list[Path]) -> SparkSession:
    """The worker's (or a test's) SparkSession, with ``jars`` on its classpath and shipped to
    its executors; ``spark_conf`` comes last, so it can change any of the rest."""
    # Without this Spark warns that the hostname resolves to a loopback address.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master_url)
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
        # The driver's logging (log4j2.properties beside this module): no banner, and none of
        # the WARN lines a normal start printed. Default options, so that a COINSTREAM_SPARK_CONF
        # with spark.driver.extraJavaOptions adds to them rather than drop them.
        .config(
            "spark.driver.defaultJavaOptions",
            f"-Dlog4j2.configurationFile={DRIVER_LOG4J_CONFIG.as_uri()}",
        )
    )
    if jars:
        builder = builder.config("spark.jars", ",".join(str(jar) for jar in jars))
    if settings.checkpoint_in_cloud_storage:
        for name, value in cloud_storage_config(settings).items():
            builder = builder.config(f"spark.hadoop.{name}", value)
    for name, value in (cluster_config(settings) | settings.spark_conf).items():
        builder = builder.config(name, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session
