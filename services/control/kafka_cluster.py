"""Is the Kafka cluster whole? The replication of the record topics, from the cluster's metadata.

"Kafka answers" says little about a replicated cluster: with one broker of three dead it still
answers, and still takes every write, but one more loss would stop it. So the control service
also reports which brokers hold replicas of the record topics and are not alive, how many
partitions are under-replicated, and how many no longer take ``acks=all`` writes (no leader,
or fewer in-sync replicas than ``min.insync.replicas``). A SIGKILLed broker shows here once
the controller has fenced it (its session timeout, 9 s by default), and is gone from here again
once it is back and has caught up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from services.control.kafka_clients import ControlKafkaClients
from services.control.models import KafkaClusterHealth
from shared.kafka import PartitionReplicas, describe_partitions_with


async def kafka_cluster_health(
    clients: ControlKafkaClients,
    topics: Sequence[str],
    min_insync_replicas: int,
    within_seconds: float = 5.0,
) -> KafkaClusterHealth:
    """The health of ``topics``' replication, through the control service's admin client;
    raises KafkaError, OSError or TimeoutError when the cluster does not answer."""
    async with asyncio.timeout(within_seconds), clients.admin() as admin:
        cluster = await admin.describe_cluster()
        described = await describe_partitions_with(admin, list(topics))
    brokers = sorted(broker["node_id"] for broker in cluster["brokers"])
    partitions = [each for every in described.values() for each in every]
    return replication_health(brokers, partitions, min_insync_replicas)


def replication_health(
    brokers: list[int], partitions: list[PartitionReplicas], min_insync_replicas: int
) -> KafkaClusterHealth:
    """What the alive ``brokers`` and the ``partitions``' replicas say about the cluster."""
    missing = sorted({replica for each in partitions for replica in each.replicas} - set(brokers))
    under_replicated = sum(
        1 for each in partitions if len(each.in_sync_replicas) < len(each.replicas)
    )
    unwritable = sum(
        1
        for each in partitions
        if each.leader is None or len(each.in_sync_replicas) < min_insync_replicas
    )
    problems = []
    if missing:
        problems.append(f"broker(s) {', '.join(map(str, missing))} not alive")
    if under_replicated:
        problems.append(f"{under_replicated} of {len(partitions)} partition(s) under-replicated")
    if unwritable:
        problems.append(
            f"{unwritable} partition(s) without a leader or below min.insync.replicas "
            f"({min_insync_replicas}): writes to them fail"
        )
    status: Literal["ok", "degraded", "unavailable"] = "ok"
    if unwritable:
        status = "unavailable"
    elif problems:
        status = "degraded"
    detail = None
    if problems:
        detail = "; ".join(problems)
        if missing:
            detail += "; start the missing broker(s) again"
    return KafkaClusterHealth(
        status=status,
        detail=detail,
        brokers=sorted(brokers),
        missing_brokers=missing,
        partitions=len(partitions),
        under_replicated_partitions=under_replicated,
        unwritable_partitions=unwritable,
    )
