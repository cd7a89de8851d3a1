"""Readiness: Kafka and the warehouse answer, and the record topics can take writes."""

from __future__ import annotations

import asyncio
import time

from aiokafka.errors import KafkaError

from services.control.freshness import FreshnessReader
from services.control.kafka_cluster import kafka_cluster_health
from services.control.models import DependencyCheck, KafkaClusterHealth, Readiness
from shared.kafka import kafka_answers
from shared.settings import Settings
from shared.warehouse import describe_warehouse

KAFKA_CHECK_SECONDS = 3.0


async def measure_readiness(settings: Settings, freshness: FreshnessReader) -> Readiness:
    """Each dependency checked at once; ``status`` is "unready" when one fails."""

    async def kafka() -> DependencyCheck:
        started = time.monotonic()
        ok = await kafka_answers(settings, KAFKA_CHECK_SECONDS)
        return DependencyCheck(
            ok=ok,
            target=settings.kafka_bootstrap_servers,
            detail=None
            if ok
            else f"Kafka at {settings.kafka_bootstrap_servers} does not answer; start it "
            "(`make run`) or check COINSTREAM_KAFKA_BOOTSTRAP_SERVERS",
            seconds=round(time.monotonic() - started, 3),
        )

    async def warehouse() -> DependencyCheck:
        started = time.monotonic()
        problem = await freshness.check()
        return DependencyCheck(
            ok=problem is None,
            target=describe_warehouse(settings),
            detail=problem,
            seconds=round(time.monotonic() - started, 3),
        )

    async def kafka_cluster() -> KafkaClusterHealth | None:
        topics = (settings.topic_assets, settings.topic_exchanges)
        try:
            return await kafka_cluster_health(settings, topics, KAFKA_CHECK_SECONDS)
        except (KafkaError, OSError, TimeoutError):
            return None  # the kafka check says why

    kafka_check, warehouse_check, cluster = await asyncio.gather(
        kafka(), warehouse(), kafka_cluster()
    )
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
