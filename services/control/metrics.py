"""The control service's Prometheus metrics: component state, consumer lag, table freshness.

A background task refreshes a snapshot (component states and lag every
``control_refresh_seconds``, freshness every ``control_freshness_refresh_seconds``) and a
collector turns the snapshot into metrics at scrape time. So a scrape never waits on Kafka or
BigQuery, label sets of vanished partitions vanish with them, and freshness keeps growing
between refreshes, as staleness does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.control.components import ComponentRegistry
from services.control.consumer_lag import LagReader
from services.control.errors import DependencyUnavailable
from services.control.freshness import FreshnessReader
from services.control.models import ComponentStatus, FreshnessReport, LagReport, ObservedState
from shared.control_state import Desired
from shared.kafka import START_GRACE_SECONDS

logger = logging.getLogger(__name__)

COMMANDS = Counter(
    "coinstream_control_commands_total",
    "Commands the control service took, by component, command and outcome "
    "(changed, unchanged, or the HTTP status it refused with).",
    ["component", "command", "outcome"],
)
AUTH_FAILURES = Counter(
    "coinstream_control_auth_failures_total",
    "Mutating requests refused: 'missing' (401) or 'wrong' (403) bearer token, 'origin' "
    "(403: another web page's Origin, or a Host this service does not answer to).",
    ["reason"],
)


@dataclass
class Snapshot:
    components: list[ComponentStatus] | None = None
    lag: LagReport | None = None
    freshness: FreshnessReport | None = None
    kafka_up: bool | None = None
    warehouse_up: bool | None = None
    refreshed_at: float | None = None


class ControlCollector(Collector):
    """Metrics from the latest ``Snapshot``; registered once per process."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        yield from self._component_metrics(snapshot.components or [])
        yield from self._lag_metrics(snapshot.lag)
        yield from self._freshness_metrics(snapshot.freshness)
        up = GaugeMetricFamily(
            "coinstream_control_dependency_up",
            "1 when the dependency answered the last refresh, 0 when it did not.",
            labels=["dependency"],
        )
        for name, value in (("kafka", snapshot.kafka_up), ("warehouse", snapshot.warehouse_up)):
            if value is not None:
                up.add_metric([name], 1.0 if value else 0.0)
        yield up
        refreshed = GaugeMetricFamily(
            "coinstream_control_last_refresh_timestamp_seconds",
            "Unix time the control service last refreshed its view of the pipeline.",
        )
        if snapshot.refreshed_at is not None:
            refreshed.add_metric([], snapshot.refreshed_at)
        yield refreshed

    @staticmethod
    def _component_metrics(components: list[ComponentStatus]) -> Iterable[Metric]:
        observed = GaugeMetricFamily(
            "coinstream_component_state",
            "1 for the state each component is observed in, 0 for the others.",
            labels=["component", "state"],
        )
        desired = GaugeMetricFamily(
            "coinstream_component_desired_state",
            "1 for the state each component should be in, 0 for the others.",
            labels=["component", "state"],
        )
        up = GaugeMetricFamily(
            "coinstream_component_up",
            "1 when the component's /healthz answered the last refresh.",
            labels=["component"],
        )
        last_success = GaugeMetricFamily(
            "coinstream_component_last_success_timestamp_seconds",
            "Unix time of the component's last successful poll or micro-batch.",
            labels=["component"],
        )
        for component in components:
            for state in ObservedState:
                observed.add_metric(
                    [component.name, state.value],
                    1.0 if component.observed_state is state else 0.0,
                )
            for wanted in Desired:
                desired.add_metric(
                    [component.name, wanted.value],
                    1.0 if component.desired_state is wanted else 0.0,
                )
            reachable = component.observed_state is not ObservedState.UNREACHABLE
            up.add_metric([component.name], 1.0 if reachable else 0.0)
            if component.last_success_at is not None:
                last_success.add_metric([component.name], component.last_success_at.timestamp())
        yield from (observed, desired, up, last_success)

    @staticmethod
    def _lag_metrics(lag: LagReport | None) -> Iterable[Metric]:
        labels = ["group", "topic", "partition"]
        records = GaugeMetricFamily(
            "coinstream_consumer_lag_records",
            "Records retained and not yet processed by the stream worker's group.",
            labels=labels,
        )
        seconds = GaugeMetricFamily(
            "coinstream_consumer_lag_seconds",
            "Age of the oldest record the stream worker's group has not processed (0: none).",
            labels=labels,
        )
        end = GaugeMetricFamily(
            "coinstream_topic_log_end_offset",
            "Log end offset of each partition of the record topics.",
            labels=["topic", "partition"],
        )
        committed = GaugeMetricFamily(
            "coinstream_consumer_committed_offset",
            "Offset the stream worker's group committed (the next record it will process).",
            labels=labels,
        )
        in_sync = GaugeMetricFamily(
            "coinstream_topic_partition_in_sync_replicas",
            "In-sync replicas of each partition of the record topics (below "
            "coinstream_topic_partition_replicas while a broker is lost or catching up).",
            labels=["topic", "partition"],
        )
        replicas = GaugeMetricFamily(
            "coinstream_topic_partition_replicas",
            "Replicas assigned to each partition of the record topics.",
            labels=["topic", "partition"],
        )
        for topic in lag.topics if lag else []:
            for partition in topic.partitions:
                assert lag is not None
                key = [lag.group, topic.topic, str(partition.partition)]
                records.add_metric(key, partition.lag_records)
                if partition.lag_seconds is not None:
                    seconds.add_metric(key, partition.lag_seconds)
                end.add_metric(key[1:], partition.log_end_offset)
                in_sync.add_metric(key[1:], len(partition.in_sync_replicas))
                replicas.add_metric(key[1:], len(partition.replicas))
                if partition.committed_offset is not None:
                    committed.add_metric(key, partition.committed_offset)
        yield from (records, seconds, end, committed, in_sync, replicas)

    @staticmethod
    def _freshness_metrics(freshness: FreshnessReport | None) -> Iterable[Metric]:
        age = GaugeMetricFamily(
            "coinstream_table_freshness_seconds",
            "Seconds since the newest processing_timestamp in the table (absent when empty).",
            labels=["table"],
        )
        newest = GaugeMetricFamily(
            "coinstream_table_newest_processing_timestamp_seconds",
            "Unix time of the newest processing_timestamp in the table.",
            labels=["table"],
        )
        now = time.time()
        for table in freshness.tables if freshness else []:
            if table.newest_processing_timestamp is not None:
                stamp = table.newest_processing_timestamp.timestamp()
                newest.add_metric([table.table], stamp)
                age.add_metric([table.table], max(0.0, now - stamp))
        yield from (age, newest)


class MetricsRefresher:
    """Keeps ``ControlCollector.snapshot`` current; one task per process."""

    def __init__(
        self,
        collector: ControlCollector,
        components: ComponentRegistry,
        lag: LagReader,
        freshness: FreshnessReader,
    ) -> None:
        self.collector = collector
        self.components = components
        self.lag = lag
        self.freshness = freshness
        settings = components.settings
        self.interval = settings.control_refresh_seconds
        self.freshness_interval = settings.control_freshness_refresh_seconds
        self._freshness_due = 0.0
        self._started = time.monotonic()

    def _problem_level(self) -> int:
        """INFO while Kafka and the warehouse may still be starting beside this service, then
        WARNING."""
        starting = time.monotonic() - self._started < START_GRACE_SECONDS
        return logging.INFO if starting else logging.WARNING

    async def run(self) -> None:
        while True:
            try:
                await self.refresh_once()
            except Exception:
                # A bug here must not silence the metrics for good: log it, try next round.
                logger.exception("refreshing the control service's metrics failed")
            await asyncio.sleep(self.interval)

    async def refresh_once(self) -> None:
        snapshot = self.collector.snapshot
        try:
            components: list[ComponentStatus] | None = await self.components.statuses()
        except DependencyUnavailable:
            components = None  # desired states unknown: no state metrics rather than guesses
        lag, kafka_up = snapshot.lag, snapshot.kafka_up
        try:
            lag, kafka_up = await self.lag.report(), True
        except DependencyUnavailable as error:
            if kafka_up is not False:
                logger.log(self._problem_level(), "lag metrics: %s", error.detail)
            lag, kafka_up = None, False
        freshness, warehouse_up = snapshot.freshness, snapshot.warehouse_up
        if time.monotonic() >= self._freshness_due:
            self._freshness_due = time.monotonic() + self.freshness_interval
            try:
                freshness, warehouse_up = await self.freshness.report(), True
            except DependencyUnavailable as error:
                if warehouse_up is not False:
                    logger.log(self._problem_level(), "freshness metrics: %s", error.detail)
                # Keep the last figures: freshness keeps growing from them, as staleness does.
                warehouse_up = False
        self.collector.snapshot = Snapshot(
            components=components,
            lag=lag,
            freshness=freshness,
            kafka_up=kafka_up,
            warehouse_up=warehouse_up,
            refreshed_at=time.time(),
        )


_collector: ControlCollector | None = None


def control_collector() -> ControlCollector:
    """The process's collector, registered with prometheus_client's default registry once."""
    global _collector
    if _collector is None:
        _collector = ControlCollector()
        REGISTRY.register(_collector)
    return _collector
