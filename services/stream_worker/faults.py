"""Fault injection for tests and the chaos suite: kill the worker at a named point of a batch.

``COINSTREAM_WORKER_FAULT_POINT`` names the point; the worker SIGKILLs Spark's JVM and then
itself there, in its first batch with rows, so a test can prove that a crash at exactly that
moment loses and duplicates nothing. The points (docs/stream-worker.md#fault-points):

``after-merge``   the batch is in the warehouse; its offsets are not committed to the consumer
                  group, and Spark has not committed the batch to its checkpoint.
``after-commit``  the offsets are committed to the consumer group; Spark has not committed the
                  batch, so it runs again after the restart.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any, Literal

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

FaultPoint = Literal["after-merge", "after-commit"]


def kill_worker(spark: SparkSession | None, point: FaultPoint) -> None:
    """SIGKILL Spark's JVM (so it writes nothing more to the checkpoint), then this process."""
    logger.warning("fault point %s reached: killing the stream worker with SIGKILL", point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    gateway: Any = spark.sparkContext._gateway if spark is not None else None
    process = getattr(gateway, "proc", None)
    if process is not None:
        os.kill(process.pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
