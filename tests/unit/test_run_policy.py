"""``make run``'s restart policy and shutdown order, without processes."""

from __future__ import annotations

from deploy.local.run_policy import (
    MAX_RESTART_DELAY_SECONDS,
    STEADY_RUN_SECONDS,
    RestartPolicy,
    stop_seconds,
    stop_stage,
)
from deploy.local.supervisor import local_processes
from shared.settings import Settings


def test_restart_delays_double_up_to_the_cap_and_reset_after_a_steady_run() -> None:
    policy = RestartPolicy(limit=100, window_seconds=1.0)
    delays = [policy.on_exit(now=10.0 * index, ran_seconds=1.0) for index in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert max(d for d in delays if d is not None) == MAX_RESTART_DELAY_SECONDS
    assert policy.on_exit(now=100.0, ran_seconds=STEADY_RUN_SECONDS) == 1.0


def test_a_process_that_keeps_failing_within_the_window_is_given_up() -> None:
    policy = RestartPolicy(limit=3, window_seconds=60.0)
    assert policy.on_exit(now=0.0, ran_seconds=1.0) is not None
    assert policy.on_exit(now=10.0, ran_seconds=1.0) is not None
    assert policy.on_exit(now=20.0, ran_seconds=1.0) is None


def test_exits_outside_the_window_do_not_count() -> None:
    policy = RestartPolicy(limit=2, window_seconds=60.0)
    assert policy.on_exit(now=0.0, ran_seconds=1.0) is not None
    assert policy.on_exit(now=100.0, ran_seconds=1.0) is not None


def test_producers_stop_before_the_worker_before_readers_before_infrastructure() -> None:
    settings = Settings(_env_file=None)
    stages = {name: stop_stage(name) for name in local_processes(settings)}
    assert stages["asset-ingestor"] == stages["exchange-ingestor"] == 0
    assert stages["stream-worker"] == 1
    assert {stages[name] for name in ("control", "dashboard", "prometheus")} == {2}
    assert stages["kafka"] == stages["bigquery"] == 3
    assert stop_stage("kafka-2") == 3


def test_each_process_gets_the_time_its_own_shutdown_needs() -> None:
    settings = Settings(_env_file=None, shutdown_flush_seconds=30.0)
    assert stop_seconds("asset-ingestor", settings) > settings.shutdown_flush_seconds
    assert stop_seconds("stream-worker", settings) > 60.0  # the worker's graceful batch stop
    assert stop_seconds("dashboard", settings) < stop_seconds("stream-worker", settings)
