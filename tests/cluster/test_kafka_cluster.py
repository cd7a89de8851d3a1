"""The pipeline on a three-node Kafka cluster while brokers die: nothing lost, nothing twice.

Both ingestors poll the simulator every second and the stream worker consumes, on topics
replicated three times with ``min.insync.replicas=2``. The broker leading most record
partitions is SIGKILLed, then started again; once it has caught up, a second broker is
SIGKILLed for a while, then started again. The control service reports each loss and each
recovery. At the end every record the ingestors fetched (their own log says which polls, of
which snapshot, with how many records) is in the warehouse exactly once, and each key's
records were written, and are in Kafka, in the order they were fetched.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.kafka import describe_partitions
from tests.cluster.support import peak_memory_mib, process_pid, report
from tests.harness.broker import read_topic, topic_end_total
from tests.harness.cluster import KAFKA_CLUSTER_ENVIRONMENT, KafkaCluster
from tests.harness.environment import SIMULATOR_PORT, TEST_ENVIRONMENT
from tests.harness.pipeline import INGESTORS, Pipeline
from tests.harness.processes import LocalStack, ManagedProcess
from tests.harness.stream_worker import StreamWorkerProcess
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.cluster

BASE_PORT = 21110
OUTAGE_SECONDS = 10.0
"""How long each killed broker stays down once the cluster has noticed."""


@dataclass(frozen=True)
class Poll:
    """One poll, as the ingestor's log states it."""

    ingestor: str
    poll_id: str
    source_timestamp_ms: int
    records: int


class ReplicatedPipeline:
    """The harness pipeline (control open, the session's simulator) on the three-node cluster,
    and what this test asks of both."""

    def __init__(self, cluster: KafkaCluster) -> None:
        self.cluster = cluster
        self.pipeline = Pipeline(
            "kafka-cluster",
            BASE_PORT,
            services=(*INGESTORS, "stream-worker", "control"),
            broker={
                **KAFKA_CLUSTER_ENVIRONMENT,
                "COINSTREAM_STATE_DIR": TEST_ENVIRONMENT["COINSTREAM_STATE_DIR"],
            },
            shared_simulator_port=SIMULATOR_PORT,
            open_access=True,
        )
        self.worker = self.pipeline.worker
        self.settings = self.pipeline.settings
        self.api = self.pipeline.api
        self.peaks: dict[str, float] = {}

    @property
    def ingestors(self) -> dict[str, ManagedProcess]:
        """The ingestors' processes by endpoint (``assets``, ``exchanges``)."""
        services = self.pipeline.services
        return {"assets": services["asset-ingestor"], "exchanges": services["exchange-ingestor"]}

    def sample_brokers(self) -> None:
        for node, process in self.cluster.nodes.items():
            if process.is_running():
                peak = peak_memory_mib(process_pid(process))
                if peak is not None:
                    name = f"kafka node {node}"
                    self.peaks[name] = max(self.peaks.get(name, 0.0), round(peak, 1))

    def readiness(self) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get("/readyz").json()
        return body

    def cluster_view(self) -> dict[str, Any] | None:
        """The control service's view of the cluster; None while it cannot say."""
        try:
            view: dict[str, Any] | None = self.readiness().get("kafka_cluster")
        except (httpx.HTTPError, ValueError):
            return None
        return view

    def lag_partitions(self) -> list[dict[str, Any]]:
        response = self.api.get("/lag")
        if response.status_code != 200:
            return []
        return [
            partition for topic in response.json()["topics"] for partition in topic["partitions"]
        ]

    def leaders(self) -> Counter[int]:
        topics = [self.settings.topic_assets, self.settings.topic_exchanges]
        described = asyncio.run(describe_partitions(self.settings, topics))
        return Counter(each.leader for every in described.values() for each in every if each.leader)

    def polls(self) -> list[Poll]:
        found = []
        for endpoint, process in self.ingestors.items():
            for line in process.log_text().splitlines():
                if not line.startswith("{"):
                    continue
                entry = json.loads(line)
                if "source_timestamp_ms" in entry and "records" in entry:
                    found.append(
                        Poll(
                            endpoint,
                            entry["poll_id"],
                            entry["source_timestamp_ms"],
                            entry["records"],
                        )
                    )
        return found


@pytest.fixture(scope="module")
def pipeline(
    local_stack: LocalStack, kafka_cluster: KafkaCluster, simulator: str
) -> Iterator[ReplicatedPipeline]:
    httpx.delete(f"http://127.0.0.1:{SIMULATOR_PORT}/_simulator/faults").raise_for_status()
    running = ReplicatedPipeline(kafka_cluster)
    with running.pipeline:
        yield running


def kill_and_watch(pipeline: ReplicatedPipeline, victim: int, figures: dict[str, Any]) -> None:
    """SIGKILL node ``victim``, see the control service report it, keep it down for
    ``OUTAGE_SECONDS``, start it again and see the control service report the recovery."""
    cluster = pipeline.cluster
    pipeline.sample_brokers()
    killed_at = time.monotonic()
    cluster.kill(victim)

    def loss_reported() -> bool:
        view = pipeline.cluster_view()
        return bool(view and view["missing_brokers"] == [victim] and view["status"] == "degraded")

    wait_for(loss_reported, f"the control service to report broker {victim} lost", 90)
    figures["seconds_to_loss_reported"] = round(time.monotonic() - killed_at, 1)
    view = pipeline.cluster_view()
    assert view is not None and view["under_replicated_partitions"] == view["partitions"]
    assert view["unwritable_partitions"] == 0
    assert pipeline.readiness()["status"] == "ready"  # degraded, and still taking writes
    wait_for(
        lambda: (
            (partitions := pipeline.lag_partitions())
            and all(
                victim not in each["in_sync_replicas"] and each["leader"] != victim
                for each in partitions
            )
        ),
        f"the lag report to show no partition led by, or in sync on, broker {victim}",
        60,
    )

    time.sleep(OUTAGE_SECONDS)
    restarted_at = time.monotonic()
    cluster.start_node(victim)

    def recovery_reported() -> bool:
        view = pipeline.cluster_view()
        return bool(view and view["status"] == "ok")

    wait_for(recovery_reported, f"the control service to report broker {victim} back", 180)
    figures["seconds_to_recovery_reported"] = round(time.monotonic() - restarted_at, 1)
    # /lag and /readyz are measured apart and each answer may be up to
    # COINSTREAM_CONTROL_ANSWER_CACHE_SECONDS old: the lag report follows within a few seconds.
    wait_for(
        lambda: (
            (partitions := pipeline.lag_partitions())
            and all(len(each["in_sync_replicas"]) == 3 for each in partitions)
        ),
        "the lag report to show every partition fully in sync again",
        30,
    )


def test_brokers_die_and_every_fetched_record_arrives_once_in_order(
    pipeline: ReplicatedPipeline,
) -> None:
    worker = pipeline.worker
    wait_for(lambda: worker.health().get("batches", 0) >= 3, "the worker's first batches", 120)
    wait_for(lambda: (pipeline.cluster_view() or {}).get("status") == "ok", "a whole cluster", 60)

    first: dict[str, Any] = {}
    leaders = pipeline.leaders()
    first_victim = leaders.most_common(1)[0][0]
    first["victim"] = first_victim
    first["partitions_it_led"] = leaders[first_victim]
    kill_and_watch(pipeline, first_victim, first)
    report("leaders' broker SIGKILLed and started again", **first)

    second: dict[str, Any] = {}
    second_victim = next(
        node for node, _ in pipeline.leaders().most_common() if node != first_victim
    )
    second["victim"] = second_victim
    kill_and_watch(pipeline, second_victim, second)
    report("a second broker SIGKILLed for a while", **second)
    time.sleep(5)  # polls after the last recovery, too

    # Stop the ingestors (SIGTERM delivers what they hold), then let the worker catch up.
    for process in pipeline.ingestors.values():
        # uvicorn re-raises SIGTERM after its graceful shutdown (which flushes the buffer).
        assert process.stop(signal.SIGTERM) in (0, -signal.SIGTERM), process.log_tail()
        assert "dropped poll" not in process.log_text(), process.log_tail()
        assert "dead-lettered" not in process.log_text()
    worker.wait_caught_up(300)
    pipeline.sample_brokers()

    polls = pipeline.polls()
    reckonings = {
        "assets": reckon_polls(
            worker, "assets", "id", [p for p in polls if p.ingestor == "assets"]
        ),
        "exchanges": reckon_polls(
            worker, "exchanges", "exchange_id", [p for p in polls if p.ingestor == "exchanges"]
        ),
    }
    kafka_order = {
        topic: kafka_order_per_key(pipeline, topic)
        for topic in (pipeline.settings.topic_assets, pipeline.settings.topic_exchanges)
    }
    worker_log = worker.process.log_text()
    report(
        "three brokers, two of them SIGKILLed in turn",
        polls=len(polls),
        warehouse=reckonings,
        kafka=kafka_order,
        worker_query_restarts=worker_log.count("restarting from the checkpoint"),
        ingestor_producer_replacements=sum(
            process.log_text().count("replacing the Kafka producer")
            for process in pipeline.ingestors.values()
        ),
    )
    report("kafka peak memory (MiB)", **pipeline.peaks)
    for table, reckoning in reckonings.items():
        assert reckoning["checked"] > 0, table
        assert reckoning["lost"] == 0 and reckoning["duplicated"] == 0, (table, reckoning)
        assert reckoning["out_of_order_keys"] == 0, (table, reckoning)
    for topic, order in kafka_order.items():
        assert order["out_of_order_keys"] == 0, (topic, order)


def reckon_polls(
    worker: StreamWorkerProcess, table: str, key: str, polls: list[Poll]
) -> dict[str, int]:
    """The ingestors' polls against the table.

    A record is (key, source timestamp). Two polls within one simulator tick fetch the same
    snapshot, which the worker rightly writes once; so what is expected is, per snapshot, the
    number of records its poll fetched.
    """
    expected = {poll.source_timestamp_ms: poll.records for poll in polls}
    rows = worker.query(
        f"SELECT UNIX_MILLIS(source_timestamp) AS ts, COUNT(*) AS n_rows, "
        f"COUNT(DISTINCT `{key}`) AS n_keys FROM `{{d}}.{table}` GROUP BY ts"
    )
    found = {int(row["ts"]): (int(row["n_rows"]), int(row["n_keys"])) for row in rows}
    order = worker.query(
        f"SELECT `{key}` AS k, COUNT(*) AS n FROM (SELECT `{key}`, source_timestamp, "
        f"processing_timestamp, LAG(processing_timestamp) OVER (PARTITION BY `{key}` "
        f"ORDER BY source_timestamp) AS previous FROM `{{d}}.{table}`) "
        f"WHERE previous > processing_timestamp GROUP BY k"
    )
    return {
        "polls": len(polls),
        "snapshots": len(expected),
        "checked": sum(expected.values()),
        "lost": sum(max(0, count - found.get(ts, (0, 0))[1]) for ts, count in expected.items()),
        "duplicated": sum(rows - keys for rows, keys in found.values()),
        "unexpected_snapshots": len(set(found) - set(expected)),
        "out_of_order_keys": len(order),
    }


def kafka_order_per_key(pipeline: ReplicatedPipeline, topic: str) -> dict[str, int]:
    """Each key's messages in offset order must carry non-decreasing source timestamps; a
    re-sent message (after a producer was replaced) shows as a copy, which the worker drops."""
    messages = asyncio.run(read_topic(pipeline.settings.kafka_bootstrap_servers, topic))
    # read_topic reads to the end offsets, which must count exactly the messages read.
    assert topic_end_total(pipeline.settings, topic) == len(messages)
    last: dict[bytes, int] = {}
    seen: Counter[tuple[bytes, int]] = Counter()
    out_of_order = set()
    for message in sorted(messages, key=lambda m: (m.partition, m.offset)):
        assert message.key is not None and message.value is not None
        stamp = int(json.loads(message.value)["source_timestamp"])
        if stamp < last.get(message.key, stamp):
            out_of_order.add(message.key)
        last[message.key] = stamp
        seen[(message.key, stamp)] += 1
    return {
        "messages": len(messages),
        "copies": sum(count - 1 for count in seen.values()),
        "out_of_order_keys": len(out_of_order),
    }
