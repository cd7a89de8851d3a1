"""The stream worker on a Spark standalone cluster: a master, two workers, an executor on each.

The worker is submitted to the cluster by its settings alone (``COINSTREAM_LOCAL_SPARK_WORKERS``
names the master; executor size from ``COINSTREAM_SPARK_EXECUTOR_*``). A backlog goes through
exactly once; then one executor's JVM is SIGKILLed in the middle of a micro-batch. Spark runs
the lost tasks again on the executor left (or the batch again, from the checkpoint), the
worker starts a new executor in its place, and the warehouse ends with each record exactly
once, in order per key.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.spark_cluster import spark_cluster_dir
from tests.cluster.support import (
    child_pids,
    peak_memory_mib,
    process_pid,
    produce_asset_polls,
    reckon,
    report,
    sample_peaks,
)
from tests.harness.cluster import SPARK_ENVIRONMENT, SparkStandalone
from tests.harness.environment import TEST_ENVIRONMENT, offset_port
from tests.harness.processes import LocalStack
from tests.harness.stream_worker import StreamWorkerProcess
from tests.harness.waiting import wait_for

WORKER_PORT = offset_port(21103)
EXECUTOR = "CoarseGrainedExecutorBackend"
TASK = r"task (\d+)\.(\d+) in stage (\d+)\.(\d+) \(TID (\d+)\)"
"""How an executor's log names a task: partition.attempt in stage.attempt, and its task id."""
ASSETS = 200
POLLS = 100
"""Each backlog: 100 polls of 200 assets, 20,000 records; batches of up to 4,000."""


class ClusterRun:
    """The worker on the cluster, with what the tests learn about it along the way."""

    def __init__(self, cluster: SparkStandalone, worker: StreamWorkerProcess) -> None:
        self.cluster = cluster
        self.worker = worker
        self.expected: set[tuple[str, int]] = set()
        self.next_source_ms = int(time.time() * 1000)  # within the snapshot time window
        self.peaks: dict[str, float] = {}

    def produce_backlog(self) -> None:
        self.expected |= produce_asset_polls(
            self.worker.settings, POLLS, ASSETS, self.next_source_ms
        )
        self.next_source_ms += POLLS * 1000

    def executor_processes(self) -> dict[str, tuple[int, int]]:
        """Spark's executor id -> (Spark worker number, pid) of the executor's JVM."""
        found = {}
        for number, pids in self.executors().items():
            for pid in pids:
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                executor_id = arguments[arguments.index(b"--executor-id") + 1].decode()
                found[executor_id] = (number, pid)
        return found

    def executor_logs(self, spark_worker: int | None = None, executor_id: str = "*") -> str:
        """What the executors logged (the Spark workers keep each executor's stderr in their
        work folders, one folder per application and executor)."""
        workers = [spark_worker] if spark_worker else list(self.cluster.workers)
        cluster = spark_cluster_dir(self.cluster.settings)
        return "".join(
            log.read_text(errors="replace")
            for number in workers
            for log in sorted((cluster / f"worker-{number}").glob(f"app-*/{executor_id}/stderr"))
        )

    def tasks_in_flight(self, spark_worker: int, executor_id: str) -> set[tuple[str, ...]]:
        """The tasks the executor has started and not finished, by its own log."""
        text = self.executor_logs(spark_worker, executor_id)
        started = set(re.findall(rf"Executor: Running {TASK}", text))
        return started - set(re.findall(rf"Executor: Finished {TASK}", text))

    def freeze_an_executor_mid_task(self, timeout: float) -> tuple[int, int, set[tuple[str, ...]]]:
        """(Spark worker number, pid, task ids) of an executor frozen (SIGSTOP) mid-task.

        Tasks of these batches last a fraction of a second, so a busy executor is frozen
        first and its log read then: a frozen JVM writes nothing more, and it logs a task's
        end before it tells the driver, so a task its log shows unfinished is one the driver
        will see lost. Otherwise it is let go (SIGCONT) and looked at again.
        """
        processes = self.executor_processes()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for executor_id, (number, pid) in processes.items():
                if not self.tasks_in_flight(number, executor_id):
                    continue
                os.kill(pid, signal.SIGSTOP)
                in_flight = self.tasks_in_flight(number, executor_id)
                if in_flight:
                    return number, pid, in_flight
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError(f"no executor could be frozen mid-task within {timeout:.0f} s")

    def executors(self) -> dict[int, list[int]]:
        """The executor JVMs each Spark worker runs now, by worker number."""
        return {
            number: child_pids(process_pid(process), EXECUTOR)
            for number, process in self.cluster.workers.items()
        }

    def pids(self) -> dict[str, int]:
        named = {"spark master": process_pid(self.cluster.master)}
        # The driver is the JVM the worker's Python process starts (pyspark's gateway).
        for pid in child_pids(process_pid(self.worker.process), "SparkSubmit"):
            named["stream worker's driver JVM"] = pid
        for number, process in self.cluster.workers.items():
            named[f"spark worker {number}"] = process_pid(process)
        for number, pids in self.executors().items():
            for pid in pids:
                named[f"executor on worker {number} (pid {pid})"] = pid
        return named

    def sample(self) -> None:
        sample_peaks(self.peaks, self.pids)


@pytest.fixture(scope="module")
def run(local_stack: LocalStack, spark_cluster: SparkStandalone) -> Iterator[ClusterRun]:
    worker = StreamWorkerProcess(
        "spark-cluster",
        {
            **SPARK_ENVIRONMENT,
            **TEST_ENVIRONMENT,  # the worker's own state folder, not the cluster's
            "COINSTREAM_SPARK_CONF": SPARK_ENVIRONMENT["COINSTREAM_SPARK_CONF"],
            "COINSTREAM_STREAM_MAX_RECORDS_PER_BATCH": "4000",
        },
        WORKER_PORT,
    )
    cluster_run = ClusterRun(spark_cluster, worker)
    seconds = worker.start()
    wait_for(
        lambda: all(cluster_run.executors().values()), "an executor on every Spark worker", 120
    )
    report("stream worker on the cluster", seconds_to_running_query=round(seconds, 1))
    yield cluster_run
    worker.process.stop()


def test_a_backlog_is_written_exactly_once_by_the_cluster(run: ClusterRun) -> None:
    assert run.worker.settings.spark_master_url.startswith("spark://127.0.0.1:")
    run.produce_backlog()
    started = time.monotonic()
    while not run.worker.caught_up():
        assert time.monotonic() - started < 300, "the backlog was not processed within 300 s"
        assert run.worker.process.is_running(), run.worker.process.log_tail(40)
        run.sample()
        time.sleep(1)
    reckoning = reckon(run.worker, "assets", "id", run.expected)
    run.sample()
    report(
        "backlog on the cluster",
        seconds=round(time.monotonic() - started, 1),
        **reckoning.as_dict(),
    )
    assert reckoning.as_dict() == {**reckoning.as_dict(), "lost": 0, "duplicated": 0}
    assert reckoning.unexpected == 0 and reckoning.out_of_order_keys == 0
    # The work ran on the cluster's executors, one on each worker, not in the driver.
    assert [len(pids) for pids in run.executors().values()] == [1, 1]


def test_an_executor_killed_mid_batch_loses_and_duplicates_nothing(run: ClusterRun) -> None:
    batches_before = run.worker.health().get("batches", 0)
    run.produce_backlog()
    # Into a batch of the new backlog, while one of its tasks runs on an executor.
    wait_for(
        lambda: run.worker.health().get("batches", 0) > batches_before,
        "a batch of the new backlog",
        120,
    )
    run.sample()
    spark_worker, victim, tasks = run.freeze_an_executor_mid_task(120)
    victim_peak = peak_memory_mib(victim)
    os.kill(victim, signal.SIGKILL)  # a stopped process dies of SIGKILL as a running one does
    killed_at = time.monotonic()
    batch_at_kill = run.worker.health().get("batch_in_progress")
    assert not run.worker.caught_up(), "the backlog was done before the kill"

    wait_for(
        lambda: run.executors()[spark_worker] and run.executors()[spark_worker] != [victim],
        f"Spark worker {spark_worker} to start a new executor",
        120,
    )
    replaced = time.monotonic() - killed_at
    while not run.worker.caught_up():
        assert time.monotonic() - killed_at < 300, "the backlog was not processed within 300 s"
        assert run.worker.process.is_running(), run.worker.process.log_tail(40)
        run.sample()
        time.sleep(1)
    reckoning = reckon(run.worker, "assets", "id", run.expected)
    log = run.worker.process.log_text()
    report(
        "executor SIGKILLed mid-batch",
        batch_at_kill=batch_at_kill,
        spark_worker_of_killed_executor=spark_worker,
        tasks_running_at_kill=sorted(f"{task[0]}.{task[1]} in stage {task[2]}" for task in tasks),
        killed_executor_peak_mib=round(victim_peak or 0, 1),
        seconds_to_replacement_executor=round(replaced, 1),
        seconds_to_caught_up=round(time.monotonic() - killed_at, 1),
        driver_saw_executor_lost="Lost executor" in log,
        tasks_interrupted=len(tasks),
        query_restarts=log.count("restarting from the checkpoint"),
        **reckoning.as_dict(),
    )
    report("peak memory (MiB)", **run.peaks)
    assert "Lost executor" in log, "the driver never noticed the executor's death"
    # Each task the kill interrupted was run again, as a new attempt, and finished.
    finished = set(re.findall(rf"Executor: Finished {TASK}", run.executor_logs()))
    for partition, attempt, stage, stage_attempt, task_id in tasks:
        again = [
            other
            for other in finished
            if other[0] == partition and other[2] == stage and other[4] != task_id
        ]
        assert again, f"task {partition}.{attempt} of stage {stage}.{stage_attempt} never reran"
    assert reckoning.lost == 0 and reckoning.duplicated == 0
    assert reckoning.unexpected == 0 and reckoning.out_of_order_keys == 0
    assert reckoning.checked == 2 * POLLS * ASSETS
