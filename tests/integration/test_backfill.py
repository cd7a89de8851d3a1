"""The backfill against the real stack: the simulator as a process, the real Kafka broker, the
stream worker (Spark) and the BigQuery emulator. History lands exactly once, a rerun or a
resumed run spends no credit twice, and a spent quota stops the run cleanly and says so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.backfill import BackfillPlan, BackfillProgress, BackfillRequest, backfill
from shared.coincap.history import INTERVAL_MS, point_times
from shared.settings import Settings
from shared.warehouse import relation_id
from tests.harness.environment import SIMULATOR_PORT, TEST_STATE_DIR, offset_port
from tests.harness.processes import LocalStack, subprocess_environment
from tests.harness.stream_worker import StreamWorkerProcess

SIMULATOR = f"http://127.0.0.1:{SIMULATOR_PORT}"
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = END - timedelta(days=4)


class Interrupted(Exception):
    """Stands for Ctrl-C half-way through a run."""


@pytest.fixture(scope="module")
def worker(local_stack: LocalStack, simulator: str) -> Iterator[StreamWorkerProcess]:
    history_topic = f"test.backfill.history.{uuid.uuid4().hex[:8]}"
    process = StreamWorkerProcess(
        "backfill",
        local_stack.environment,
        offset_port(18113),
        overrides={"COINSTREAM_TOPIC_HISTORY": history_topic},
    )
    process.start()
    yield process
    process.process.stop()


def backfill_environment(worker: StreamWorkerProcess, state_dir: Path) -> dict[str, str]:
    """What a backfill needs: the worker's topics, the simulator, its own ledger."""
    return {
        **worker.environment,
        "COINSTREAM_COINCAP_SIMULATOR_PORT": str(SIMULATOR_PORT),
        "COINSTREAM_BACKFILL_MAX_POINTS_PER_WINDOW": "24",
        "COINSTREAM_COINCAP_MAX_RETRIES": "2",
        "COINSTREAM_STATE_DIR": str(state_dir),
    }


def settings_for(worker: StreamWorkerProcess, state_dir: Path) -> Settings:
    values: dict[str, Any] = {
        key.removeprefix("COINSTREAM_").lower(): value
        for key, value in backfill_environment(worker, state_dir).items()
    }
    return Settings(_env_file=None, **values)


def fresh_state() -> Path:
    return TEST_STATE_DIR / f"backfill-{uuid.uuid4().hex[:8]}"


def history_requests() -> int:
    requests: dict[str, int] = httpx.get(f"{SIMULATOR}/_simulator/stats").json()["requests"]
    return requests.get("history", 0)


def expected_points(ids: tuple[str, ...], interval: str = "h1") -> int:
    step = INTERVAL_MS[interval]  # type: ignore[index]
    start_ms, end_ms = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    return len(ids) * len(point_times(step, start_ms, end_ms))


def stored(worker: StreamWorkerProcess, ids: tuple[str, ...], interval: str) -> tuple[int, int]:
    """(rows, distinct (id, interval, time)) of ``ids`` in asset_history."""
    listed = ", ".join(f"'{asset_id}'" for asset_id in ids)
    (row,) = worker.query(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT CONCAT(id, interval, CAST(time AS STRING))) AS d "
        f"FROM `{{d}}.asset_history` WHERE id IN ({listed}) AND interval = '{interval}'"
    )
    return row["n"], row["d"]


def run(
    settings: Settings, ids: tuple[str, ...], interval: str = "h1", stop_after: int | None = None
) -> Any:
    def progress(step: BackfillProgress) -> None:
        if stop_after is not None and step.windows_done == stop_after:
            raise Interrupted

    def yes(plan: BackfillPlan) -> bool:
        return True

    request = BackfillRequest(start=START, end=END, interval=interval, ids=ids)  # type: ignore[arg-type]
    return asyncio.run(backfill(request, settings, yes, progress))


def test_a_backfill_lands_once_and_a_second_run_spends_nothing(
    worker: StreamWorkerProcess,
) -> None:
    ids = ("bitcoin", "ethereum", "tether")
    settings = settings_for(worker, fresh_state())
    before = history_requests()
    first = run(settings, ids)
    assert first.outcome == "finished"
    assert first.records == expected_points(ids)
    assert history_requests() - before == first.windows_fetched == len(first.plan.windows) > 3
    assert first.credits_spent == first.plan.estimate.credits

    second = run(settings, ids)
    assert second.outcome == "nothing-to-do"
    assert second.plan.estimate.credits == 0
    assert history_requests() - before == first.windows_fetched  # no credit spent twice

    worker.wait_caught_up(120, [settings.topic_history])
    assert stored(worker, ids, "h1") == (expected_points(ids),) * 2

    # Without the ledger every window is fetched and sent again: the MERGE keeps each point once.
    resent = run(settings_for(worker, fresh_state()), ids)
    assert resent.records == expected_points(ids)
    worker.wait_caught_up(120, [settings.topic_history])
    assert stored(worker, ids, "h1") == (expected_points(ids),) * 2
    (row,) = worker.query(
        "SELECT price_usd, circulating_supply, source_timestamp, time "
        "FROM `{d}.asset_history` WHERE id = 'bitcoin' ORDER BY time DESC LIMIT 1"
    )
    assert row["price_usd"] > 0 and row["circulating_supply"] > 0
    assert row["source_timestamp"] == row["time"] == END
    table = worker.client.get_table(relation_id(worker.settings, "asset_history"))
    assert table.time_partitioning.field == "time"
    assert table.clustering_fields == ["id", "interval"]


def test_an_interrupted_backfill_resumes_without_fetching_a_window_twice(
    worker: StreamWorkerProcess,
) -> None:
    ids = ("solana", "dogecoin")
    settings = settings_for(worker, fresh_state())
    before = history_requests()
    with pytest.raises(Interrupted):
        run(settings, ids, "h2", stop_after=3)
    assert history_requests() - before == 3

    resumed = run(settings, ids, "h2")
    assert resumed.outcome == "finished"
    assert resumed.plan.skipped_windows == 3
    windows_in_all = 3 + resumed.windows_fetched
    assert history_requests() - before == windows_in_all  # each window fetched once

    worker.wait_caught_up(120, [settings.topic_history])
    assert stored(worker, ids, "h2") == (expected_points(ids, "h2"),) * 2


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "quota_exhausted", "endpoint": "history"},
        {"mode": "rate_limit", "count": 20, "retry_after": 0, "endpoint": "history"},
    ],
    ids=["spent-quota", "429-storm"],
)
def test_a_spent_quota_stops_the_command_cleanly_and_says_so(
    worker: StreamWorkerProcess, fault: dict[str, Any]
) -> None:
    state_dir = fresh_state()
    command = [
        sys.executable,
        "-m",
        "coinstream",
        "backfill",
        "--ids",
        "cardano",
        "--interval",
        "h6",
    ]
    command += ["--start", f"{START:%Y-%m-%d}", "--end", f"{END:%Y-%m-%dT%H:%M}", "--yes"]
    environment = subprocess_environment(backfill_environment(worker, state_dir))
    httpx.post(f"{SIMULATOR}/_simulator/faults", json=fault).raise_for_status()
    try:
        stopped = subprocess.run(
            [*command, "--json"], env=environment, capture_output=True, text=True, timeout=120
        )
    finally:
        httpx.delete(f"{SIMULATOR}/_simulator/faults").raise_for_status()
    assert stopped.returncode == 1, stopped.stderr
    summary = json.loads(stopped.stdout)
    assert summary["outcome"] == "stopped"
    assert "HTTP 429" in summary["stopped_by"] and summary["credits_spent"] == 0
    assert not (state_dir / "backfill" / "windows.jsonl").exists()

    # Once the quota is back, the same command finishes; the human output says what it cost.
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Cost: " in done.stdout and "records" in done.stdout
