"""The jars of the local stack, fetched from Maven Central once by ``make setup``.

Three poms under ``deploy/local/maven/`` name them: the Kafka broker's classpath, the Spark
Kafka connector the stream worker loads, and the Cloud Storage connector it loads for a
``gs://`` checkpoint. After setup, nothing needs the network.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path

from deploy.local.errors import StackError
from deploy.local.kafka_broker import kafka_jars_dir
from deploy.local.prerequisites import require_command
from services.stream_worker.jars import gcs_connector_jars_dir, spark_kafka_jars_dir
from shared.settings import PROJECT_ROOT, Settings

MAVEN_DIR = PROJECT_ROOT / "deploy" / "local" / "maven"


def _pom_fingerprint(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jar_artifact_name(jar_name: str) -> str:
    """``kafka-clients-3.9.2.jar`` -> ``kafka-clients``."""
    match = re.match(r"^(.*?)-\d[\w.\-]*\.jar$", jar_name)
    return match.group(1) if match else jar_name.removesuffix(".jar")


def fetch_maven_jars(pom: Path, destination: Path, skip_artifacts: Collection[str] = ()) -> None:
    """Copy a pom's runtime dependencies into ``destination``, once per version of the pom.

    A fingerprint of the pom next to the jars makes a re-run free and a pom change refetch.
    ``skip_artifacts`` leaves out jars another classpath already provides.
    """
    stamp = destination / ".pom-sha256"
    fingerprint = _pom_fingerprint(pom)
    if stamp.exists() and stamp.read_text() == fingerprint:
        return
    maven = require_command(
        "mvn",
        "Maven fetches the Kafka broker and Spark connector jars from Maven Central",
        "Install it (Debian/Ubuntu: `apt-get install maven`) and retry.",
    )
    staging = destination.with_name(destination.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"setup: fetching {pom.parent.name} jars from Maven Central ...", flush=True)
    result = subprocess.run(
        [
            maven,
            "--batch-mode",
            "--quiet",
            "--settings",
            str(MAVEN_DIR / "settings.xml"),
            "--file",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        errors = [line for line in result.stdout.splitlines() if "[ERROR]" in line]
        first_error = errors[0] if errors else result.stderr.strip()[:300]
        raise StackError(
            f"Maven could not fetch the jars of {pom}: {first_error} (is Maven Central reachable?)"
        )
    for jar in staging.glob("*.jar"):
        if _jar_artifact_name(jar.name) in skip_artifacts:
            jar.unlink()
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    stamp.write_text(fingerprint)


def pyspark_jar_artifacts() -> set[str]:
    """Artifact names of the jars pyspark ships, which the connector must not duplicate."""
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    return {_jar_artifact_name(jar.name) for jar in jars.glob("*.jar")}


def fetch_stack_jars(settings: Settings) -> None:
    """The broker's jars, and the connectors' where the stream worker looks for them."""
    fetch_maven_jars(MAVEN_DIR / "kafka-broker" / "pom.xml", kafka_jars_dir(settings))
    fetch_maven_jars(
        MAVEN_DIR / "spark-kafka" / "pom.xml",
        spark_kafka_jars_dir(settings),
        skip_artifacts=pyspark_jar_artifacts(),
    )
    fetch_maven_jars(MAVEN_DIR / "gcs-connector" / "pom.xml", gcs_connector_jars_dir(settings))
