"""The whole local pipeline as processes the fault suite can kill one at a time.

A simulator of its own (so its served log and fault knobs are this pipeline's alone, and it
demands a real-looking API key), both ingestors, the stream worker, the control service and the
dashboard, on topics, a dataset, a checkpoint and a consumer group of their own, on the session's
broker and emulator (the ``local_stack`` fixture).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.control_api import ControlApi
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, ManagedProcess, launch, wait_until_answering
from tests.harness.stream_worker import StreamWorkerProcess
from tests.harness.waiting import wait_for

PORTS = {
    "simulator": offset_port(18490),
    "control": offset_port(18410),
    "asset-ingestor": offset_port(18411),
    "exchange-ingestor": offset_port(18412),
    "stream-worker": offset_port(18413),
    "dashboard": offset_port(18414),
}
LOG_DIR = TEST_STATE_DIR / "logs"

# name: (module, arguments); the stream worker is ``StreamWorkerProcess``'s.
SERVICES = {
    "asset-ingestor": ("services.ingestor", ("assets",)),
    "exchange-ingestor": ("services.ingestor", ("exchanges",)),
    "control": ("services.control", ()),
    "dashboard": ("services.dashboard", ()),
}


def real_looking_api_key() -> str:
    """A CoinCap-like key: 64 hex digits, unique per run, so a grep finds only real leaks."""
    return secrets.token_hex(32)


class ChaosPipeline:
    """The pipeline's processes, with the faults a test may do to them."""

    def __init__(self, local_stack: LocalStack, name: str) -> None:
        self.local_stack = local_stack
        self.api_key = real_looking_api_key()
        self.token = secrets.token_urlsafe(32)
        simulator = f"http://127.0.0.1:{PORTS['simulator']}"
        self.simulator_url = simulator
        self.worker = StreamWorkerProcess(
            name,
            {
                **TEST_ENVIRONMENT,
                "COINSTREAM_COINCAP_API_KEY": self.api_key,
                "COINSTREAM_COINCAP_BASE_URL": f"{simulator}/v3",
                "COINSTREAM_COINCAP_TIMEOUT_SECONDS": "5",
                "COINSTREAM_POLL_INTERVAL_SECONDS": "1",
                "COINSTREAM_CONTROL_API_TOKEN": self.token,
                "COINSTREAM_CONTROL_REFRESH_SECONDS": "1",
                "COINSTREAM_CONTROL_PORT": str(PORTS["control"]),
                "COINSTREAM_ASSET_INGESTOR_PORT": str(PORTS["asset-ingestor"]),
                "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(PORTS["exchange-ingestor"]),
                "COINSTREAM_DASHBOARD_PORT": str(PORTS["dashboard"]),
                # Spools of its own: nothing another pipeline's ingestors left is sent here.
                "COINSTREAM_INGEST_SPOOL_DIR": str(
                    TEST_STATE_DIR / f"ingest-spool-{name}-{secrets.token_hex(4)}"
                ),
            },
            PORTS["stream-worker"],
        )
        self.environment = self.worker.environment
        self.settings = self.worker.settings
        self.api = ControlApi(f"http://127.0.0.1:{PORTS['control']}", self.token)
        self.simulator = ManagedProcess(
            f"chaos-simulator-{name}",
            [
                sys.executable,
                "-m",
                "services.coincap_simulator",
                "--port",
                str(PORTS["simulator"]),
                "--seed",
                "13",
                "--tick-seconds",
                "1",
                "--api-key",
                self.api_key,
            ],
            {},
            LOG_DIR,
        )
        self.services: dict[str, ManagedProcess] = {}
        self.worker_kills = 0

    # --- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        """Every process at once (Spark's start, the longest, overlaps the others'); then wait
        until each answers and the worker's query runs."""
        self.simulator.start()
        for name in SERVICES:
            self.start_service(name, wait=False)
        self.worker.process.start()
        wait_until_answering(self.simulator, f"{self.simulator_url}/healthz")
        for name in SERVICES:
            wait_until_answering(self.services[name], self.health_url(name))
        self.wait_worker_running()

    def start_service(self, name: str, wait: bool = True) -> None:
        module, arguments = SERVICES[name]
        suffix = self.worker.environment["COINSTREAM_STREAM_CONSUMER_GROUP"]
        self.services[name] = launch(
            f"chaos-{name}-{suffix}", module, self.environment, LOG_DIR, arguments
        )
        if wait:
            wait_until_answering(self.services[name], self.health_url(name))

    def restart_service(self, name: str) -> None:
        """SIGTERM (the ingestors flush first), then start again and wait until it answers."""
        self.services[name].stop(timeout=60)
        self.start_service(name)

    def stop(self) -> None:
        """Ingestors first (they flush), then the worker, control, dashboard, simulator."""
        for name in ("asset-ingestor", "exchange-ingestor"):
            if name in self.services:
                self.services[name].stop(timeout=60)
        if self.worker.process.is_running():
            self.worker.process.stop(timeout=90)
        for name in ("control", "dashboard"):
            if name in self.services:
                self.services[name].stop()
        if self.simulator.is_running():
            self.simulator.stop()

    def processes(self) -> dict[str, ManagedProcess]:
        return {
            "simulator": self.simulator,
            **self.services,
            "stream-worker": self.worker.process,
        }

    def logs(self) -> dict[str, str]:
        return {name: process.log_text() for name, process in self.processes().items()}

    # --- what the processes say ------------------------------------------------------------

    def health_url(self, name: str) -> str:
        return f"http://127.0.0.1:{PORTS[name]}/healthz"

    def health(self, name: str) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(self.health_url(name), timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body

    def metric(self, name: str, sample: str, **labels: str) -> float:
        """The sum of ``name``'s ``/metrics`` samples called ``sample`` with ``labels``."""
        text = httpx.get(f"http://127.0.0.1:{PORTS[name]}/metrics", timeout=10).text
        return sum(
            each.value
            for family in text_string_to_metric_families(text)
            for each in family.samples
            if each.name == sample and labels.items() <= each.labels.items()
        )

    def pids(self) -> dict[str, int]:
        return {
            name: process.process.pid
            for name, process in self.processes().items()
            if process.process is not None and process.is_running()
        }

    # --- faults ----------------------------------------------------------------------------

    def kill_service(self, name: str) -> None:
        """SIGKILL one of ``SERVICES`` (no flush, no clean-up); ``start_service`` starts it
        again."""
        process = self.services[name].process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def kill_worker(self) -> None:
        """SIGKILL the worker and its Spark JVM together, as a crashed container loses both."""
        process = self.worker.process.process
        assert process is not None
        tree = [process.pid, *descendants(process.pid)]
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(30)
        self.worker_kills += 1

    def restart_worker(self) -> None:
        """Start the worker again on the same checkpoint; wait until its query runs."""
        self.restart_worker_without_waiting()
        self.wait_worker_running()

    def wait_worker_running(self) -> None:
        def running() -> bool:
            process = self.worker.process
            assert process.is_running(), f"the worker exited:\n{process.log_tail(40)}"
            return self.worker.health().get("state") == "RUNNING"

        wait_for(running, "the restarted worker to run its query", 300)

    def restart_worker_without_waiting(self, environment: dict[str, str] | None = None) -> None:
        """Launch a new worker process on the same checkpoint, with ``environment`` added."""
        assert not self.worker.process.is_running(), "the worker is still running"
        self.worker.process = ManagedProcess(
            self.worker.process.name,
            self.worker.process.argv,
            {**self.environment, **(environment or {})},
            LOG_DIR,
        )
        self.worker.process.start()

    def set_fault(self, **knob: Any) -> None:
        httpx.post(f"{self.simulator_url}/_simulator/faults", json=knob).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.simulator_url}/_simulator/faults").raise_for_status()

    # --- settling, so the warehouse can be held against what was served --------------------

    def pause_ingestors(self) -> None:
        """Pause both ingestors through control, and wait until they hold nothing undelivered."""
        for name in ("asset-ingestor", "exchange-ingestor"):
            accepted = self.api.command(name, "pause", json={"requested_by": "chaos"})
            assert accepted.status_code == 202, accepted.text
        for name in ("asset-ingestor", "exchange-ingestor"):
            wait_for(
                lambda name=name: (  # type: ignore[misc]
                    self.health(name).get("state") == "PAUSED"
                    and self.health(name).get("buffered_records") == 0
                ),
                f"{name} to pause with nothing buffered",
                120,
            )

    def resume_ingestors(self) -> None:
        for name in ("asset-ingestor", "exchange-ingestor"):
            accepted = self.api.command(name, "resume", json={"requested_by": "chaos"})
            assert accepted.status_code == 202, accepted.text

    def settle(self, timeout: float = 300) -> None:
        """Ingestors paused and delivered, the worker caught up with every record."""
        self.clear_faults()
        self.pause_ingestors()
        self.worker.wait_caught_up(timeout)

    def wait_polling(self, seconds: float) -> None:
        """Let the ingestors poll for ``seconds``, failing early if a process died."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, process in self.services.items():
                assert process.is_running(), f"{name} exited:\n{process.log_tail(30)}"
            time.sleep(0.5)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Spark's launcher and its JVM), from /proc."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                pending.append(child)
    return found
