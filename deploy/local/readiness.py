"""Is the local stack up? Waits for the broker and the emulator, and ``make run``'s watcher
(which also watches the local Spark cluster, when there is one).

Every process of ``make run`` starts at once; the watcher waits until each answers, prints one
"ready" line with every address, then reports only changes in health, so the terminal says
when something stops answering without repeating itself.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

import httpx

from deploy.local.errors import StackError
from deploy.local.spark_cluster import alive_spark_workers, local_spark_master_ui_url
from shared.kafka import kafka_answers
from shared.settings import Settings


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200; a refused or failed request is simply False."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def bigquery_emulator_answers(settings: Settings, timeout: float = 2.0) -> bool:
    """True when the emulator lists the datasets of its project."""
    return http_answers(
        f"{settings.bigquery_emulator_url}/bigquery/v2/projects/"
        f"{settings.bigquery_emulator_project}/datasets",
        timeout,
    )


def wait_until(
    check: Callable[[], bool], what: str, timeout: float, interval: float = 0.25
) -> float:
    """Poll ``check`` until it holds; return the seconds it took, or raise StackError."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise StackError(f"{what} did not become ready within {timeout:.0f} s; see its log")
        time.sleep(interval)


def wait_for_kafka(
    settings: Settings, timeout: float = 60.0, still_starting: Callable[[], bool] = lambda: True
) -> float:
    """Wait for the broker; ``still_starting`` returning False (its process died) ends the wait."""
    what = f"Kafka at {settings.kafka_bootstrap_servers}"

    def answers() -> bool:
        if not still_starting():
            raise StackError(f"{what} exited while starting; see its log")
        return asyncio.run(kafka_answers(settings))

    return wait_until(answers, what, timeout)


def wait_for_bigquery_emulator(
    settings: Settings, timeout: float = 60.0, still_starting: Callable[[], bool] = lambda: True
) -> float:
    """Wait for the emulator; ``still_starting`` returning False ends the wait."""
    what = f"the BigQuery emulator at {settings.bigquery_emulator_url}"

    def answers() -> bool:
        if not still_starting():
            raise StackError(f"{what} exited while starting; see its log")
        return bigquery_emulator_answers(settings)

    return wait_until(answers, what, timeout)


def service_health_checks(settings: Settings) -> dict[str, tuple[str, Callable[[], bool]]]:
    """What ``watch`` reports on: each process of ``run`` after the broker and the emulator."""
    host = "127.0.0.1"
    checks: dict[str, tuple[str, Callable[[], bool]]] = {}
    services = []
    if settings.uses_coincap_simulator:
        services.append(("CoinCap simulator", settings.coincap_simulator_port))
    services += [
        ("asset-ingestor", settings.asset_ingestor_port),
        ("exchange-ingestor", settings.exchange_ingestor_port),
        ("stream-worker", settings.stream_worker_port),
        ("control", settings.control_port),
        ("dashboard", settings.dashboard_port),
    ]
    for name, port in services:
        url = f"http://{host}:{port}/healthz"
        checks[name] = (url, functools.partial(http_answers, url))
    prometheus_url = f"http://{host}:{settings.prometheus_port}/-/ready"
    checks["Prometheus"] = (prometheus_url, functools.partial(http_answers, prometheus_url))
    if settings.local_spark_workers:
        # Healthy when every worker has registered: the master alone runs no executor.
        checks[f"Spark master with {settings.local_spark_workers} worker(s)"] = (
            local_spark_master_ui_url(settings),
            lambda: alive_spark_workers(settings) == settings.local_spark_workers,
        )
    return checks


def watch(settings: Settings, interval: float = 5.0) -> None:
    """Report when the stack is ready, then every change in its health, until stopped."""
    kafka_seconds = wait_for_kafka(settings)
    bigquery_seconds = wait_for_bigquery_emulator(settings)
    services = service_health_checks(settings)
    for name, (url, answers) in services.items():
        wait_until(answers, f"{name} at {url}", 60.0)
    print(
        f"ready: Kafka at {settings.kafka_bootstrap_servers} ({kafka_seconds:.1f} s), "
        f"BigQuery emulator at {settings.bigquery_emulator_url} ({bigquery_seconds:.1f} s), "
        + ", ".join(f"{name} at {url}" for name, (url, _) in services.items())
        + "; Ctrl-C stops everything",
        flush=True,
    )
    if settings.uses_coincap_simulator:
        print(
            "data is SIMULATED: no COINSTREAM_COINCAP_API_KEY is set, so the ingestors poll the "
            "bundled CoinCap simulator",
            flush=True,
        )
    checks: dict[str, Callable[[], bool]] = {
        "Kafka": lambda: asyncio.run(kafka_answers(settings)),
        "BigQuery emulator": lambda: bigquery_emulator_answers(settings),
        **{name: answers for name, (_, answers) in services.items()},
    }
    healthy = dict.fromkeys(checks, True)
    while True:
        time.sleep(interval)
        for name, check in checks.items():
            answering = check()
            if answering != healthy[name]:
                print(f"{name} {'answers again' if answering else 'stopped answering'}", flush=True)
            healthy[name] = answering
