"""What the default ``coinstream backfill`` costs and how long it takes on the simulator.

Starts a fresh broker, BigQuery emulator, CoinCap simulator and stream worker on benchmark
ports, runs ``python -m coinstream backfill --yes --json`` with its defaults (the top 10 assets,
the last 30 days, hourly), and reports its credits, requests, records and time, then the time
until every record is a row of ``asset_history``; then runs it again to show that a rerun
spends nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from typing import Any

import httpx

from deploy.local.readiness import http_answers, wait_until
from shared.settings import PROJECT_ROOT
from shared.warehouse import create_bigquery_client, relation_id
from tests.harness.processes import (
    LocalStack,
    ManagedProcess,
    settings_from,
    subprocess_environment,
)

BENCH_STATE_DIR = PROJECT_ROOT / ".state" / "bench-backfill"
SIMULATOR_PORT = 29490
WORKER_PORT = 29503
ENVIRONMENT = {
    "COINSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29492",
    "COINSTREAM_KAFKA_CONTROLLER_PORT": "29493",
    "COINSTREAM_BIGQUERY_EMULATOR_URL": "http://127.0.0.1:29450",
    "COINSTREAM_BIGQUERY_EMULATOR_GRPC_PORT": "29460",
    "COINSTREAM_STATE_DIR": str(BENCH_STATE_DIR / "stack"),
    "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
    "COINSTREAM_STREAM_WORKER_PORT": str(WORKER_PORT),
    "COINSTREAM_STREAM_TRIGGER_SECONDS": "1",
}


def worker_running() -> bool:
    try:
        health = httpx.get(f"http://127.0.0.1:{WORKER_PORT}/healthz", timeout=2).json()
    except httpx.HTTPError:
        return False
    return bool(health.get("state") == "RUNNING")


def backfill_once() -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "coinstream", "backfill", "--yes", "--json"],
        env=subprocess_environment(ENVIRONMENT),
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, Any] = json.loads(finished.stdout)
    return summary, time.monotonic() - started


def main() -> int:
    # Refused connections while the broker starts are expected; aiokafka logs each one.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    shutil.rmtree(BENCH_STATE_DIR, ignore_errors=True)
    stack = LocalStack(ENVIRONMENT, BENCH_STATE_DIR)
    logs = BENCH_STATE_DIR / "logs"
    simulator = ManagedProcess(
        "coincap-simulator",
        [sys.executable, "-m", "services.coincap_simulator", "--port", str(SIMULATOR_PORT)],
        {},
        logs,
    )
    worker = ManagedProcess(
        "stream-worker", [sys.executable, "-m", "services.stream_worker"], ENVIRONMENT, logs
    )
    try:
        stack.start()
        simulator.start()
        wait_until(
            lambda: http_answers(f"http://127.0.0.1:{SIMULATOR_PORT}/healthz"), "simulator", 30
        )
        worker.start()
        wait_until(worker_running, "the stream worker", 240)
        summary, seconds = backfill_once()
        started = time.monotonic()
        settings = settings_from(ENVIRONMENT)
        client = create_bigquery_client(settings)
        table = relation_id(settings, "asset_history")

        def landed() -> bool:
            rows = client.query(f"SELECT COUNT(*) AS n FROM `{table}`").result()
            return int(next(iter(rows))["n"]) >= int(summary["records"])

        wait_until(landed, "every record in asset_history", 300)
        to_rows = time.monotonic() - started
        again, again_seconds = backfill_once()
        print("default backfill (top 10 assets, last 30 days, h1) on the simulator:")
        print(
            f"  {summary['credits_spent']:g} credits (estimated {summary['credits_estimated']:g}, "
            f"{summary['budget_share_estimated']:.2%} of the monthly budget), "
            f"{summary['windows_fetched']} history requests + 1 listing"
        )
        print(f"  {summary['records']:,} records in {seconds:.1f} s (the command, start to end)")
        print(f"  all rows in asset_history {to_rows:.1f} s after it ended (1 s trigger)")
        print(
            f"  a second run: {again['outcome']}, {again['credits_spent']:g} credits, "
            f"{again_seconds:.1f} s"
        )
    finally:
        for process in (worker, simulator, stack.bigquery, stack.kafka):
            if process.is_running():
                process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
