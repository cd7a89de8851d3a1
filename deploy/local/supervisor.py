"""``make run``: every process of the local pipeline in one terminal, restarted when it exits.

honcho runs each process (in a session of its own, so the terminal's Ctrl-C reaches only this
supervisor) and prefixes its output with its name; this module adds what honcho's manager
lacks: a crashed process comes back after a growing delay while the rest stay up, a process
that keeps failing stops the stack with one line naming it, and Ctrl-C or SIGTERM stops the
processes in stages (``run_policy``), each with its own time to finish, ending with one line
per process. Restarts and exits go to a report that the control service shows in /components.

supervisord was the other candidate: it restarts with backoff only while a program is starting
(a program that crashes after ``startsecs`` comes back at once, for ever), stopping the stack
when one program gives up, and one prefixed stream of every program's output, would each need
an event listener of ours beside a second daemon.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import TextIO

from honcho.printer import Message, Printer
from honcho.process import Process

from deploy.local.control_access import control_access_environment
from deploy.local.kafka_broker import local_kafka_nodes
from deploy.local.run_policy import (
    EXIT_NOT_WORTH_RESTARTING,
    RestartPolicy,
    stop_seconds,
    stop_stage,
)
from shared.logging import resolved_format
from shared.settings import PROJECT_ROOT, Settings
from shared.supervised_processes import (
    SupervisedProcess,
    SupervisorReport,
    supervisor_report_path,
    write_supervisor_report,
)

SUPERVISOR_NAME = "coinstream"
EVENT_WAIT_SECONDS = 0.1


def local_processes(settings: Settings) -> dict[str, str]:
    """The processes of the local pipeline, by name, as shell commands."""
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


class TerminalOutput:
    """``make run``'s terminal, which can go away before the stack has stopped: a closed
    terminal window sends SIGHUP, and every later write to it fails. A failed write is dropped
    (and the rest with it), so that the stop goes on to the last process instead of ending
    with the supervisor's traceback and half the stack still running."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except (OSError, ValueError):  # EIO or EPIPE; ValueError once it is closed
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self.gone = True

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()


@dataclass
class Supervised:
    """One process of the stack and what the supervisor knows of it."""

    name: str
    process: Process
    policy: RestartPolicy
    stop_seconds: float
    pid: int | None = None
    started_at: float = 0.0
    restarts: int = 0
    last_exit_status: int | None = None
    restart_at: float | None = None
    terminated_at: float | None = None
    killed: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.thread is not None


class Supervisor:
    """Runs the processes until a signal, or until one of them keeps failing."""

    def __init__(self, settings: Settings, processes: dict[str, Process]) -> None:
        self.settings = settings
        self.events: queue.Queue[Message] = queue.Queue()
        self.printer = Printer(TerminalOutput(sys.stdout), colour=sys.stdout.isatty())
        self.printer.width = max(len(name) for name in [SUPERVISOR_NAME, *processes])
        self.processes = {
            name: Supervised(
                name, process, RestartPolicy.from_settings(settings), stop_seconds(name, settings)
            )
            for name, process in processes.items()
        }
        self.report_path = supervisor_report_path(settings)
        self.signals_received = 0
        self.failed = False

    def run(self) -> int:
        """Supervise until stopped; 0 after a signal, 1 when a process kept failing."""
        # SIGHUP: the terminal was closed; its processes would outlive it otherwise.
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop_signal, self._on_signal)
        try:
            for supervised in self.processes.values():
                self._start(supervised)
            while not self.signals_received and not self.failed:
                self._handle_events(EVENT_WAIT_SECONDS)
                self._restart_due()
            self._stop_in_stages()
        finally:
            self.report_path.unlink(missing_ok=True)
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals_received += 1
        name = signal.Signals(signum).name
        if self.signals_received == 1:
            self._say(f"{name} received; stopping every process in order")
        else:
            self._say(f"{name} received again; killing what still runs")

    def _say(self, text: str) -> None:
        self.printer.write(
            Message("line", f"coinstream: {text}", datetime.now(), SUPERVISOR_NAME, None)
        )

    def _start(self, supervised: Supervised) -> None:
        supervised.restart_at = None
        supervised.started_at = time.monotonic()
        thread = threading.Thread(
            target=supervised.process.run, args=(self.events,), name=supervised.name, daemon=True
        )
        supervised.thread = thread
        thread.start()

    def _restart_due(self) -> None:
        now = time.monotonic()
        for supervised in self.processes.values():
            if supervised.restart_at is not None and supervised.restart_at <= now:
                self._start(supervised)

    def _handle_events(self, wait_seconds: float) -> None:
        """Print what the processes wrote, and act on their starts and exits."""
        try:
            message = self.events.get(timeout=wait_seconds)
        except queue.Empty:
            return
        while True:
            supervised = self.processes[message.name]
            if message.type == "line":
                self.printer.write(message)
            elif message.type == "start":
                supervised.pid = int(message.data["pid"])
                again = f", restart {supervised.restarts}" if supervised.restarts else ""
                self._say(f"{supervised.name} started (pid {supervised.pid}{again})")
                self._write_report()
                if supervised.terminated_at is not None:  # asked to stop while it started
                    _signal(supervised.pid, signal.SIGTERM)
            elif message.type == "stop":
                self._on_exit(supervised, int(message.data["returncode"]))
            try:
                message = self.events.get_nowait()
            except queue.Empty:
                return

    def _on_exit(self, supervised: Supervised, status: int) -> None:
        now = time.monotonic()
        if supervised.pid is not None:
            _kill_group(supervised.pid)  # what it started and left behind (Spark's JVM)
        supervised.pid = None
        supervised.thread = None
        supervised.last_exit_status = status
        name = supervised.name
        if supervised.terminated_at is not None:
            how = "killed after it outlasted its" if supervised.killed else "stopped within its"
            self._say(
                f"{name} stopped (exit {status}) in {now - supervised.terminated_at:.1f} s "
                f"({how} {supervised.stop_seconds:g} s)"
            )
        elif self.signals_received or self.failed:
            self._say(f"{name} exited with status {status}")
        elif status == EXIT_NOT_WORTH_RESTARTING:
            self._say(
                f"{name} exited with status {status}, a problem a restart cannot fix (its last "
                "lines above say what); stopping everything"
            )
            self.failed = True
        else:
            delay = supervised.policy.on_exit(now, now - supervised.started_at)
            if delay is None:
                self._say(
                    f"{name} keeps failing ({self.settings.run_restart_limit} exits within "
                    f"{self.settings.run_restart_window_seconds:g} s, last exit status "
                    f"{status}); stopping everything"
                )
                self.failed = True
            else:
                supervised.restarts += 1
                supervised.restart_at = now + delay
                self._say(
                    f"{name} exited with status {status}; restarting in {delay:g} s "
                    f"(restart {supervised.restarts})"
                )
        self._write_report()

    def _stop_in_stages(self) -> None:
        """SIGTERM to each stage's processes; the next stage once they are gone, or killed."""
        for stage in sorted({stop_stage(name) for name in self.processes}):
            members = [s for s in self.processes.values() if stop_stage(s.name) == stage]
            for supervised in members:
                supervised.restart_at = None
                if supervised.pid is None and not supervised.running:
                    self._say(
                        f"{supervised.name} was not running "
                        f"(last exit status {supervised.last_exit_status})"
                    )
                    continue
                supervised.terminated_at = time.monotonic()
                if supervised.pid is not None:
                    _signal(supervised.pid, signal.SIGTERM)
            while any(supervised.running for supervised in members):
                self._handle_events(EVENT_WAIT_SECONDS)
                now = time.monotonic()
                for supervised in members:
                    overdue = (
                        supervised.terminated_at is not None
                        and now - supervised.terminated_at > supervised.stop_seconds
                    )
                    if (
                        supervised.running
                        and not supervised.killed
                        and (overdue or self.signals_received > 1)
                    ):
                        supervised.killed = True
                        if supervised.pid is not None:
                            _kill_group(supervised.pid)

    def _write_report(self) -> None:
        report = SupervisorReport(
            supervisor_pid=os.getpid(),
            processes={
                name: SupervisedProcess(
                    pid=supervised.pid,
                    restarts=supervised.restarts,
                    last_exit_status=supervised.last_exit_status,
                )
                for name, supervised in self.processes.items()
            },
        )
        write_supervisor_report(self.report_path, report)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_group(pid: int) -> None:
    """SIGKILL to the process group a process leads (each runs in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run(settings: Settings) -> int:
    """Run the local pipeline until Ctrl-C, SIGTERM, or a process that keeps failing."""
    control_environment = control_access_environment(settings)
    # The processes write to a pipe to this one; whether people read them is this terminal's.
    log_format = resolved_format(settings.log_format, sys.stdout)
    processes: dict[str, Process] = {}
    for name, command in local_processes(settings).items():
        environment = {**os.environ, "COINSTREAM_LOG_FORMAT": log_format}
        if name == "control":
            # Only the control service gets the token; no other process needs it.
            environment.update(control_environment)
        # exec: the signals go to the process itself, not to a shell in front of it.
        processes[name] = Process(
            f"exec {command}", name=name, env=environment, cwd=str(PROJECT_ROOT)
        )
    return Supervisor(settings, processes).run()
