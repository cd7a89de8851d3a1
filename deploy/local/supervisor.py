"""``make run``: every process of the local pipeline under honcho, in one terminal.

honcho starts every process, prefixes its output with its name, and on a signal (or when any
process ends) stops all of them, killing what has not exited within a few seconds.
"""

from __future__ import annotations

import os
import shlex
import sys

from deploy.local.control_access import control_access_environment
from shared.settings import PROJECT_ROOT, Settings


def local_processes(settings: Settings) -> dict[str, str]:
    """The processes of the local pipeline, by name, as shell commands for honcho."""
    python = shlex.quote(sys.executable)
    processes = {
        "kafka": f"{python} -m deploy.local.stack kafka",
        "bigquery": f"{python} -m deploy.local.stack bigquery",
    }
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
