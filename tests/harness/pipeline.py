"""The pipeline as processes, described once: a CoinCap simulator (its own, or the session's),
both ingestors, the stream worker, the control service, the dashboard and Prometheus, as many of
them as a test wants, on topics, a dataset, a checkpoint, a consumer group and spools of their
own, on the session's broker and emulator or on another broker (a cluster's).

A test that only watches shares a running ``Pipeline``; one that kills, stops or reconfigures a
process asks for its own. The faults (kills, restarts, simulator knobs) and the settling that
lets the warehouse be held against what was served are methods here, so every suite does them
the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.control_api import ControlApi
from tests.harness.environment import TEST_ENVIRONMENT, TEST_STATE_DIR, offset_port
from tests.harness.processes import ManagedProcess, launch, wait_until_answering
from tests.harness.stream_worker import StreamWorkerProcess
from tests.harness.waiting import wait_for

LOG_DIR = TEST_STATE_DIR / "logs"
INGESTORS = ("asset-ingestor", "exchange-ingestor")

# name: (module, arguments, health path); the stream worker is ``StreamWorkerProcess``'s.
SERVICES = {
    "asset-ingestor": ("services.ingestor", ("assets",), "/healthz"),
    "exchange-ingestor": ("services.ingestor", ("exchanges",), "/healthz"),
    "control": ("services.control", (), "/healthz"),
    "dashboard": ("services.dashboard", (), "/healthz"),
    "prometheus": ("deploy.local.stack", ("prometheus",), "/-/ready"),
}
EVERY_SERVICE = (*INGESTORS, "stream-worker", "control", "dashboard", "prometheus")
PORT_ORDER = ("control", *INGESTORS, "stream-worker", "dashboard", "simulator", "prometheus")


def pipeline_ports(base: int) -> dict[str, int]:
    """One pipeline's ports, from ``base`` up in ``PORT_ORDER``, moved by the run's offset."""
    return {name: offset_port(base + number) for number, name in enumerate(PORT_ORDER)}


def real_looking_api_key() -> str:
    """A CoinCap-like key: 64 hex digits, unique per run, so a grep finds only real leaks."""
    return secrets.token_hex(32)


class Pipeline:
    """The pipeline's processes named ``services``, and what a test may do to them.

    ``base_port`` places them (``pipeline_ports``). With ``shared_simulator_port`` the
    ingestors poll that simulator without a key; otherwise the pipeline starts a simulator of its
    own that demands a real-looking key (so its served log and fault knobs are this pipeline's
    alone). ``broker`` reaches Kafka and the emulator (the session's by default, a cluster's,
    ...); ``open_access`` runs control without a token; ``overrides`` come last.
    """

    def __init__(
        self,
        name: str,
        base_port: int,
        *,
        services: Collection[str] = EVERY_SERVICE,
        broker: Mapping[str, str] = TEST_ENVIRONMENT,
        shared_simulator_port: int | None = None,
        open_access: bool = False,
        overrides: Mapping[str, str] | None = None,
    ) -> None:
        unknown = set(services) - set(EVERY_SERVICE)
        assert not unknown, f"no such service: {sorted(unknown)}; choose from {EVERY_SERVICE}"
        self.name = name
        self.wanted = [service for service in EVERY_SERVICE if service in services]
        self.suffix = secrets.token_hex(4)
        self.own_simulator = shared_simulator_port is None
        self.ports = pipeline_ports(base_port)
        if shared_simulator_port is not None:
            self.ports["simulator"] = shared_simulator_port
        simulator_port = self.ports["simulator"]
        self.simulator_url = f"http://127.0.0.1:{simulator_port}"
        self.api_key = real_looking_api_key() if self.own_simulator else None
        self.token = None if open_access else secrets.token_urlsafe(32)
        coincap = {"COINSTREAM_COINCAP_SIMULATOR_PORT": str(simulator_port)}
        if self.api_key is not None:
            coincap = {
                "COINSTREAM_COINCAP_API_KEY": self.api_key,
                "COINSTREAM_COINCAP_BASE_URL": f"{self.simulator_url}/v3",
            }
        access = (
            {"COINSTREAM_CONTROL_API_TOKEN": self.token}
            if self.token
            else {"COINSTREAM_CONTROL_ALLOW_OPEN": "true"}
        )
        self.worker = StreamWorkerProcess(
            name,
            {
                **broker,
                **coincap,
                **access,
                "COINSTREAM_COINCAP_TIMEOUT_SECONDS": "5",
                "COINSTREAM_POLL_INTERVAL_SECONDS": "1",
                "COINSTREAM_CONTROL_REFRESH_SECONDS": "1",
                "COINSTREAM_CONTROL_PORT": str(self.ports["control"]),
                "COINSTREAM_ASSET_INGESTOR_PORT": str(self.ports["asset-ingestor"]),
                "COINSTREAM_EXCHANGE_INGESTOR_PORT": str(self.ports["exchange-ingestor"]),
                "COINSTREAM_DASHBOARD_PORT": str(self.ports["dashboard"]),
                "COINSTREAM_PROMETHEUS_PORT": str(self.ports["prometheus"]),
                # Spools of its own: nothing another pipeline's ingestors left is sent here.
                "COINSTREAM_INGEST_SPOOL_DIR": str(
                    TEST_STATE_DIR / f"ingest-spool-{name}-{self.suffix}"
                ),
            },
            self.ports["stream-worker"],
            overrides,
        )
        self.environment = self.worker.environment
        self.settings = self.worker.settings
        self.api = ControlApi(f"http://127.0.0.1:{self.ports['control']}", self.token)
        self.simulator = (
            ManagedProcess(
                f"simulator-{name}-{self.suffix}",
                [
                    sys.executable,
                    "-m",
                    "services.coincap_simulator",
                    "--port",
                    str(simulator_port),
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
            if self.api_key
            else None
        )
        self.services: dict[str, ManagedProcess] = {}
        self.worker_kills = 0

    # --- start and stop --------------------------------------------------------------------

    def __enter__(self) -> Pipeline:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Every process at once (Spark's start, the longest, overlaps the others'); then wait
        until each answers and the worker's query runs."""
        if self.simulator is not None:
            self.simulator.start()
        others = [name for name in self.wanted if name != "stream-worker"]
        for name in others:
            self.start_service(name, wait=False)
        if "stream-worker" in self.wanted:
            self.worker.launch()
        if self.simulator is not None:
            wait_until_answering(self.simulator, f"{self.simulator_url}/healthz")
        for name in others:
            wait_until_answering(self.services[name], self.health_url(name))
        if "stream-worker" in self.wanted:
            self.wait_worker_running()

    def start_service(self, name: str, wait: bool = True) -> None:
        module, arguments, _ = SERVICES[name]
        self.services[name] = launch(
            f"{name}-{self.name}-{self.suffix}", module, self.environment, LOG_DIR, arguments
        )
        if wait:
            wait_until_answering(self.services[name], self.health_url(name))

    def restart_service(self, name: str) -> None:
        """SIGTERM (the ingestors flush first), then start again and wait until it answers."""
        self.services[name].stop(timeout=60)
        self.start_service(name)

    def stop(self) -> None:
        """Ingestors first (they flush), then the worker, the others, the simulator."""
        for name in INGESTORS:
            if name in self.services:
                self.services[name].stop(timeout=60)
        if self.worker.process.is_running():
            self.worker.process.stop(timeout=90)
        for name, process in self.services.items():
            if name not in INGESTORS:
                process.stop()
        if self.simulator is not None and self.simulator.is_running():
            self.simulator.stop()

    def processes(self) -> dict[str, ManagedProcess]:
        running = {"simulator": self.simulator} if self.simulator is not None else {}
        if "stream-worker" in self.wanted:
            running["stream-worker"] = self.worker.process
        return {**running, **self.services}

    def logs(self) -> dict[str, str]:
        return {name: process.log_text() for name, process in self.processes().items()}

    # --- what the processes say ------------------------------------------------------------

    def health_url(self, name: str) -> str:
        path = SERVICES[name][2] if name in SERVICES else "/healthz"
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def health(self, name: str) -> dict[str, Any]:
        """``name``'s ``/healthz`` body; empty while it does not answer."""
        try:
            body: dict[str, Any] = httpx.get(self.health_url(name), timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body

    def metric(self, name: str, sample: str, **labels: str) -> float:
        """The sum of ``name``'s ``/metrics`` samples called ``sample`` with ``labels``."""
        text = httpx.get(f"http://127.0.0.1:{self.ports[name]}/metrics", timeout=10).text
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

    def simulator_requests(self, endpoint: str) -> int:
        """Requests the simulator has answered for ``endpoint`` (``assets``, ``exchanges``)."""
        stats = httpx.get(f"{self.simulator_url}/_simulator/stats", timeout=10).json()
        return int(stats["requests"][endpoint])

    def outputs(self) -> dict[str, str]:
        """What the pipeline writes and answers: each process's log, and what each service
        answers on the paths a client reads (health, metrics, readiness, components, status,
        control's OpenAPI document)."""
        found = {f"{name} log": text for name, text in self.logs().items()}
        for name in self.processes():
            for path in ("/healthz", "/metrics", "/readyz", "/components", "/api/status"):
                found[f"{name} {path}"] = self._answer(name, path)
        if "control" in self.services:
            found["control /openapi.json"] = self._answer("control", "/openapi.json")
        return found

    def secret_leaks(self, outputs: Mapping[str, str]) -> list[str]:
        """The names of the ``outputs`` that show the API key or the control token."""
        kept = [secret for secret in (self.api_key, self.token) if secret]
        return [where for where, text in outputs.items() if any(s in text for s in kept)]

    def _answer(self, name: str, path: str) -> str:
        return httpx.get(f"http://127.0.0.1:{self.ports[name]}{path}", timeout=30).text

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

        wait_for(running, "the worker to run its query", 300)

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
        """Queue one of the simulator's fault knobs (``docs/simulator.md``)."""
        assert self.own_simulator, "fault knobs would reach every user of a shared simulator"
        httpx.post(f"{self.simulator_url}/_simulator/faults", json=knob).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.simulator_url}/_simulator/faults").raise_for_status()

    # --- settling, so the warehouse can be held against what was served --------------------

    def pause_ingestors(self) -> None:
        """Pause both ingestors through control, and wait until they hold nothing undelivered."""
        for name in INGESTORS:
            accepted = self.api.command(name, "pause", json={"requested_by": "harness"})
            assert accepted.status_code == 202, accepted.text
        for name in INGESTORS:
            wait_for(
                functools.partial(self.paused_and_delivered, name),
                f"{name} to pause with nothing buffered",
                120,
            )

    def paused_and_delivered(self, name: str) -> bool:
        """The ingestor ``name`` is PAUSED and holds nothing Kafka has not acknowledged."""
        health = self.health(name)
        return health.get("state") == "PAUSED" and health.get("buffered_records") == 0

    def resume_ingestors(self) -> None:
        for name in INGESTORS:
            accepted = self.api.command(name, "resume", json={"requested_by": "harness"})
            assert accepted.status_code == 202, accepted.text

    def settle(self, timeout: float = 300) -> None:
        """Ingestors paused and delivered, the worker caught up with every record."""
        if self.own_simulator:
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
