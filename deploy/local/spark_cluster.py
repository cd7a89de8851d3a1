"""A Spark standalone cluster on loopback, from the pyspark package's own jars and scripts.

For trying the stream worker on a cluster without one (``COINSTREAM_LOCAL_SPARK_WORKERS``, which
``make run`` reads) and for the tests that kill an executor. The master listens on
``local_spark_master_port``, worker N on that port plus N; their web UIs (and the master's
``/json/`` status, which readiness reads) on ``local_spark_master_ui_port`` and up. Each worker
offers one executor's worth: ``spark_executor_cores`` and ``spark_executor_memory``. Executors
are JVMs the workers start, children of theirs; the worker processes start them again when
one dies, and the master gives the application the new one.

``python -m deploy.local.stack spark-master`` and ``spark-worker --node N`` replace themselves
with ``bin/spark-class``, which in turn becomes the daemon's JVM.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pyspark

from deploy.local.errors import StackError
from deploy.local.prerequisites import require_free_port, require_java
from shared.settings import Settings

LOOPBACK = "127.0.0.1"
DAEMON_MEMORY = "256m"
"""Heap of the master and worker daemons: they only schedule (Spark's default is 1g)."""


def spark_home() -> Path:
    """The installed pyspark package, which is a whole Spark: ``jars/`` and ``bin/``."""
    return Path(pyspark.__file__).parent


def spark_cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / "spark"


def local_spark_master_ui_url(settings: Settings) -> str:
    return f"http://{LOOPBACK}:{settings.local_spark_master_ui_port}"


def spark_daemon_environment(settings: Settings) -> dict[str, str]:
    """What the daemons, and the executors they start, need besides our own environment."""
    return {
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        "SPARK_LOG_DIR": str(spark_cluster_dir(settings) / "logs"),
        # Executors run no Python of ours today; should they ever, it is the worker's own.
        "PYSPARK_PYTHON": sys.executable,
    }


def _spark_class(main_class: str, *args: str) -> list[str]:
    require_java()
    return [str(spark_home() / "bin" / "spark-class"), main_class, *args]


def spark_master_command(settings: Settings) -> list[str]:
    """The master's argv, after checking its ports."""
    port, ui_port = settings.local_spark_master_port, settings.local_spark_master_ui_port
    require_free_port(LOOPBACK, port, "COINSTREAM_LOCAL_SPARK_MASTER_PORT")
    require_free_port(LOOPBACK, ui_port, "COINSTREAM_LOCAL_SPARK_MASTER_UI_PORT")
    return _spark_class(
        "org.apache.spark.deploy.master.Master",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--webui-port",
        str(ui_port),
    )


def spark_worker_command(settings: Settings, number: int) -> list[str]:
    """Worker ``number``'s argv (from 1), after checking its ports."""
    if number < 1:
        raise StackError(f"Spark workers are numbered from 1, not {number}")
    port = settings.local_spark_master_port + number
    ui_port = settings.local_spark_master_ui_port + number
    require_free_port(LOOPBACK, port, "COINSTREAM_LOCAL_SPARK_MASTER_PORT")
    require_free_port(LOOPBACK, ui_port, "COINSTREAM_LOCAL_SPARK_MASTER_UI_PORT")
    work_dir = spark_cluster_dir(settings) / f"worker-{number}"
    work_dir.mkdir(parents=True, exist_ok=True)
    return _spark_class(
        "org.apache.spark.deploy.worker.Worker",
        f"spark://{LOOPBACK}:{settings.local_spark_master_port}",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--webui-port",
        str(ui_port),
        "--cores",
        str(settings.spark_executor_cores),
        "--memory",
        settings.spark_executor_memory,
        "--work-dir",
        str(work_dir),
    )


def alive_spark_workers(settings: Settings, timeout: float = 2.0) -> int | None:
    """Workers the local master counts as alive; None when the master does not answer."""
    try:
        status = httpx.get(f"{local_spark_master_ui_url(settings)}/json/", timeout=timeout)
        status.raise_for_status()
        workers = status.json().get("workers", [])
    except (httpx.HTTPError, ValueError):
        return None
    return sum(1 for worker in workers if worker.get("state") == "ALIVE")
