"""Readiness: Kafka and the warehouse answer, and the record topics can take writes."""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaError

from services.control.freshness import FreshnessReader
from services.control.kafka_clients import ControlKafkaClients
from services.control.kafka_cluster import kafka_cluster_health
from services.control.models import DependencyCheck, KafkaClusterHealth, Readiness
from shared.settings import ControlServiceSettings
from shared.warehouse import describe_warehouse

KAFKA_CHECK_SECONDS = 3.0


async def measure_readiness(
    settings: ControlServiceSettings, clients: ControlKafkaClients, freshness: FreshnessReader
) -> Readiness:
    """Each dependency checked at once; ``status`` is "unready" when one fails. Kafka is asked
    through the control service's long-lived admin client: one metadata answer says both that
    it answers and how the record topics are replicated."""

    async def kafka() -> tuple[DependencyCheck, KafkaClusterHealth | None]:
        started = time.monotonic()
        topics = (settings.topic_assets, settings.topic_exchanges)
        try:
            cluster = await kafka_cluster_health(
                clients, topics, settings.topic_min_insync_replicas, KAFKA_CHECK_SECONDS
            )
        except (KafkaError, OSError, TimeoutError):
            cluster = None
        ok = cluster is not None and bool(cluster.brokers)
        check = DependencyCheck(
            ok=ok,
            target=settings.kafka_bootstrap_servers,
            detail=None
            if ok
            else f"Kafka at {settings.kafka_bootstrap_servers} does not answer; start it "
            "(`make run`) or check COINSTREAM_KAFKA_BOOTSTRAP_SERVERS",
            seconds=round(time.monotonic() - started, 3),
        )
        return check, cluster if ok else None

    async def warehouse() -> DependencyCheck:
        started = time.monotonic()
        problem = await freshness.check()
        return DependencyCheck(
            ok=problem is None,
            target=describe_warehouse(settings),
            detail=problem,
            seconds=round(time.monotonic() - started, 3),
        )

    (kafka_check, cluster), warehouse_check = await asyncio.gather(kafka(), warehouse())
    failing = [check.detail for check in (kafka_check, warehouse_check) if check.detail]
    if cluster is not None and cluster.status == "unavailable" and cluster.detail:
        failing.append(f"Kafka record topics: {cluster.detail}")
    return Readiness(
        status="unready" if failing else "ready",
        detail="; ".join(failing) or None,
        kafka=kafka_check,
        warehouse=warehouse_check,
        kafka_cluster=cluster,
    )
