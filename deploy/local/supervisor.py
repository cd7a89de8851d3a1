"""``make run``: every process of the local pipeline under honcho, in one terminal.

honcho starts every process, prefixes its output with its name, and on a signal (or when any
process ends) stops all of them, killing what has not exited within a few seconds.
"""

from __future__ import annotations

import os
import shlex
import sys

from deploy.local.control_access import control_access_environment
from deploy.local.kafka_broker import local_kafka_nodes
from shared.settings import PROJECT_ROOT, Settings


def local_processes(settings: Settings) -> dict[str, str]:
    """The processes of the local pipeline, by name, as shell commands for honcho."""
    python = shlex.quote(sys.executable)
    stack = f"{python} -m deploy.local.stack"
    nodes = local_kafka_nodes(settings)
    if len(nodes) == 1:
        processes = {"kafka": f"{stack} kafka"}
    else:
        processes = {
            f"kafka-{node.node_id}": f"{stack} kafka --node {node.node_id}" for node in nodes
        }
    processes["bigquery"] = f"{stack} bigquery"
    if settings.local_spark_workers:
        processes["spark-master"] = f"{stack} spark-master"
        for number in range(1, settings.local_spark_workers + 1):
            processes[f"spark-worker-{number}"] = f"{stack} spark-worker --node {number}"
    if settings.uses_coincap_simulator:
        processes["coincap-simulator"] = (
            f"{python} -m services.coincap_simulator --port {settings.coincap_simulator_port}"
        )
    processes["asset-ingestor"] = f"{python} -m services.ingestor assets"
    processes["exchange-ingestor"] = f"{python} -m services.ingestor exchanges"
    processes["stream-worker"] = f"{python} -m services.stream_worker"
    processes["control"] = f"{python} -m services.control"
    processes["dashboard"] = f"{python} -m services.dashboard"
    processes["prometheus"] = f"{python} -m deploy.local.stack prometheus"
    processes["stack"] = f"{python} -m deploy.local.stack watch"
    return processes


def run(settings: Settings) -> int:
    """Run the local pipeline until Ctrl-C, SIGTERM, or one process exits; its exit status."""
    from honcho.manager import Manager
    from honcho.printer import Printer

    control_environment = control_access_environment(settings)
    manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
    for name, command in local_processes(settings).items():
        environment = dict(os.environ)
        if name == "control":
            # Only the control service gets the token; no other process needs it.
            environment.update(control_environment)
        manager.add_process(name, command, env=environment, cwd=str(PROJECT_ROOT))
    manager.loop()
    return int(manager.returncode or 0)
