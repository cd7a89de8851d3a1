"""A class-data-sharing archive of the Spark driver's classes, for the drivers the tests start.

A Spark driver spends most of its start loading and verifying some ten thousand classes from
Spark's jars, the same ones every time. The JVM can dump the classes a run loaded into an archive
(``-XX:ArchiveClassesAtExit``) and map it at the next start (``-XX:SharedArchiveFile``), which
skips that work. Measured on this project's 2-core machine, a driver's start and first jobs:
7.3 CPU-seconds and 8.4 s without the archive, 3.9 CPU-seconds and 5.2 s with it.

The archive is made once, beside the start of a run's session stack, by a driver built as
the worker builds its own (``build_spark_session`` with the Kafka connector's jars), and kept in
``.cache/`` under a name made of what it depends on (Spark's version, the JVM, the jars), so a
later run reuses it and an upgrade makes a new one. Of two test processes, one makes it.
A driver whose classpath does not match uses no archive and runs as before: the JVM checks, and
its message about it is switched off with ``-Xlog``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

from services.stream_worker.jars import spark_kafka_jars_dir
from shared.settings import PROJECT_ROOT, Settings

ARCHIVE_DIR = PROJECT_ROOT / ".cache" / "spark-class-archive"
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""The quick compiler and the single-threaded collector, for the drivers and the session's
broker under test (see ``tests.harness.environment``)."""
QUIET_ARCHIVE = "-Xlog:cds=off -Xlog:cds+dynamic=off"
DUMP_SECONDS = 300


def archive_path() -> Path:
    """Where the archive for this Spark, this JVM and these connector jars lives."""
    java = shutil.which("java")
    jars_dir = spark_kafka_jars_dir(Settings(_env_file=None))
    jars = sorted(path.name for path in jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    key = "\n".join(
        [
            importlib.metadata.version("pyspark"),
            str(Path(java).resolve()) if java else "",
            QUICK_JVM,
            *jars,
        ]
    )
    return ARCHIVE_DIR / f"driver-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def driver_java_options() -> str:
    """The drivers' JVM options under test: the quick JVM, and the archive's path (a JVM
    started before the archive exists, or on another class path, runs without it)."""
    return f"{QUICK_JVM} -XX:SharedArchiveFile={archive_path()} {QUIET_ARCHIVE}"


DUMP_SCRIPT = """
import sys
from pyspark.sql import functions as F
from services.stream_worker.jars import spark_kafka_jars
from services.stream_worker.spark import build_spark_session
from shared.settings import Settings

options = sys.argv[1]
settings = Settings(_env_file=None, spark_conf={"spark.driver.extraJavaOptions": options})
spark = build_spark_session(settings, "coinstream-class-archive", spark_kafka_jars(settings))
# What a worker's batch does: parse JSON records, type and check them, collect them as Arrow.
frame = spark.createDataFrame([('{"id": "bitcoin", "priceUsd": "1.5"}',)], ["value"])
parsed = frame.select(F.from_json("value", "id STRING, priceUsd STRING").alias("record"))
typed = parsed.select("record.id", F.col("record.priceUsd").try_cast("double").alias("price"))
typed.groupBy("id").agg(F.max("price")).toArrow()
gateway = spark.sparkContext._gateway.proc
spark.stop()
gateway.stdin.close()  # the gateway JVM exits at the end of its input, and writes the archive
gateway.wait(timeout=120)
"""


def ensure_archive() -> Path | None:
    """Make the archive unless it is there or another process is making it; None (and a line
    on stderr if it failed) otherwise. A driver that starts before the archive is there, or
    when it could not be made, simply starts without it: the archive appears under its name
    only once whole."""
    path = archive_path()
    ARCHIVE_DIR.mkdir(parents=True, exist_ok=True)
    with (ARCHIVE_DIR / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # the other test process of this run is making it
            return None
        if path.exists():
            return path
        partial = path.with_suffix(f".{os.getpid()}.partial")
        options = f"{QUICK_JVM} -XX:ArchiveClassesAtExit={partial} {QUIET_ARCHIVE}"
        result = subprocess.run(
            [sys.executable, "-c", DUMP_SCRIPT, options],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=DUMP_SECONDS,
            check=False,
        )
        if result.returncode != 0 or not partial.exists():
            partial.unlink(missing_ok=True)
            tail = "\n".join(result.stderr.splitlines()[-5:])
            sys.stderr.write(f"coinstream: no Spark class archive (drivers do without):\n{tail}\n")
            return None
        partial.replace(path)
        return path
