"""The native local stack: a real Kafka broker and the BigQuery emulator as local processes.

For machines without Docker, and for the test suite. ``make run`` runs the whole pipeline
under its supervisor; tests start the same commands as subprocesses. Subcommands:

    python -m deploy.local.stack setup      fetch jars (Maven), place DuckDB extensions
    python -m deploy.local.stack run        the whole local pipeline, supervised (`make run`)
    python -m deploy.local.stack kafka      run the broker in the foreground (formats on first
                                            run); --node N: node N of a several-node cluster
    python -m deploy.local.stack bigquery   run the BigQuery emulator in the foreground
    python -m deploy.local.stack prometheus run Prometheus on the local ports' config
    python -m deploy.local.stack spark-master
                                            run a Spark standalone master on loopback
    python -m deploy.local.stack spark-worker
                                            run the Spark standalone worker --node N (from 1)
    python -m deploy.local.stack wait       wait until both answer, then exit
    python -m deploy.local.stack watch      wait for every process, report ready, then report
                                            each change in health

This is the stack's one command line. Each job lives in a module of its own beside it
(``maven``, ``duckdb_extensions``, ``kafka_broker``, ``bigquery_emulator``, ``prometheus``,
``spark_cluster``, ``readiness``, ``supervisor``, ``control_access``); this module parses the
command and dispatches to them. Every problem a user can fix (no Java, a port in use, a corrupt
state folder) ends the command with one line saying what is wrong and what to do, and exit
status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from deploy.local.bigquery_emulator import bigquery_emulator_command, bigquery_home_dir
from deploy.local.duckdb_extensions import place_duckdb_extensions
from deploy.local.errors import StackError
from deploy.local.kafka_broker import kafka_broker_command
from deploy.local.maven import fetch_stack_jars
from deploy.local.prerequisites import require_java
from deploy.local.prometheus import prometheus_command
from deploy.local.readiness import wait_for_bigquery_emulator, wait_for_kafka, watch
from deploy.local.spark_cluster import (
    spark_daemon_environment,
    spark_master_command,
    spark_worker_command,
)
from deploy.local.supervisor import run
from shared.settings import Settings, describe_settings_error

EXIT_USER_ERROR = 2


def setup(settings: Settings) -> None:
    """Everything the local stack needs before it can run offline."""
    require_java()
    fetch_stack_jars(settings)
    place_duckdb_extensions(bigquery_home_dir(settings))
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    print(f"setup: done (jars in {settings.cache_dir}, state in {settings.state_dir})", flush=True)


def replace_process(argv: list[str], environment: dict[str, str] | None = None) -> None:
    """Become ``argv``, so that the broker, the emulator or Prometheus gets our signals directly."""
    sys.stdout.flush()
    if environment is None:
        os.execv(argv[0], argv)
    os.execve(argv[0], argv, environment)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.stack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "command",
        choices=[
            "setup",
            "run",
            "kafka",
            "bigquery",
            "prometheus",
            "spark-master",
            "spark-worker",
            "wait",
            "watch",
        ],
        help="what to do",
    )
    parser.add_argument(
        "--node",
        type=int,
        default=1,
        help="which Kafka node or Spark worker, from 1 (kafka, spark-worker)",
    )
    arguments = parser.parse_args(argv)
    # Readiness checks expect refused connections while a broker starts; aiokafka would log
    # each one as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"coinstream: {describe_settings_error(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        if arguments.command == "setup":
            setup(settings)
        elif arguments.command == "kafka":
            replace_process(kafka_broker_command(settings, arguments.node))
        elif arguments.command == "bigquery":
            replace_process(*bigquery_emulator_command(settings))
        elif arguments.command == "prometheus":
            replace_process(prometheus_command(settings))
        elif arguments.command in ("spark-master", "spark-worker"):
            command = (
                spark_master_command(settings)
                if arguments.command == "spark-master"
                else spark_worker_command(settings, arguments.node)
            )
            replace_process(command, {**os.environ, **spark_daemon_environment(settings)})
        elif arguments.command == "run":
            return run(settings)
        elif arguments.command == "wait":
            wait_for_kafka(settings)
            wait_for_bigquery_emulator(settings)
        elif arguments.command == "watch":
            watch(settings)
    except StackError as error:
        print(f"coinstream: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
