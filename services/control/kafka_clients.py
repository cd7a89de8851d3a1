"""The control service's Kafka clients for measuring: one admin client and one consumer, kept
open for the life of the process.

``/lag``, ``/readyz`` and the metrics refresh ask Kafka every few seconds. A client per
measurement costs a TCP connection, a bootstrap and a metadata fetch each time (and on a
managed cluster a TLS and SASL handshake), so these two are started on first use and then
reused. A client that fails or times out mid-measurement is closed and forgotten, and the next
measurement starts a new one: after a broker restart the service reaches Kafka again by itself.
``coinstream_control_kafka_clients_started_total`` counts the clients started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Counter

from shared.kafka import kafka_client_config
from shared.settings import ControlServiceSettings

CLIENTS_STARTED = Counter(
    "coinstream_control_kafka_clients_started_total",
    "Kafka clients the control service started for /lag and /readyz ('admin' or 'consumer'); "
    "kept open and reused, so this grows only after Kafka failed a measurement.",
    ["client"],
)

_Client = TypeVar("_Client", AIOKafkaAdminClient, AIOKafkaConsumer)

REQUEST_TIMEOUT_SECONDS = 10.0
"""The longest any measurement waits for Kafka; each also bounds its own calls more tightly."""


class ControlKafkaClients:
    """One admin client and one consumer, started on first use and shared by every
    measurement; ``close`` at shutdown."""

    def __init__(self, settings: ControlServiceSettings) -> None:
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()
        # The consumer's assignment and positions belong to one measurement at a time.
        self._consumer_in_use = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def admin(self) -> AsyncIterator[AIOKafkaAdminClient]:
        """The shared admin client (concurrent requests are fine); dropped when a request
        through it fails, times out or is cancelled."""
        async with self._starting:
            if self._admin is None:
                self._admin = await _started(self._new_admin(), "admin")
            admin = self._admin
        try:
            yield admin
        except BaseException:
            if self._admin is admin:
                self._admin = None
            await admin.close()
            raise

    @contextlib.asynccontextmanager
    async def consumer(self) -> AsyncIterator[AIOKafkaConsumer]:
        """The shared consumer, for one measurement at a time; whatever it was assigned is
        unassigned afterwards, so it fetches nothing between measurements."""
        async with self._consumer_in_use:
            async with self._starting:
                if self._consumer is None:
                    self._consumer = await _started(self._new_consumer(), "consumer")
                consumer = self._consumer
            try:
                yield consumer
            except BaseException:
                self._consumer = None
                await consumer.stop()
                raise
            consumer.unsubscribe()

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if admin is not None:
            await admin.close()
        if consumer is not None:
            await consumer.stop()

    def _new_admin(self) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            **kafka_client_config(self.settings),
            client_id="coinstream-control",
            request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
        )

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_client_config(self.settings),
            client_id="coinstream-control",
            enable_auto_commit=False,
            request_timeout_ms=int(REQUEST_TIMEOUT_SECONDS * 1000),
        )


async def _started(client: _Client, kind: str) -> _Client:
    """``client`` started and counted; closed again when it cannot start (no half-started
    client is kept: its next use would fail on a connection that never was)."""
    CLIENTS_STARTED.labels(kind).inc()
    try:
        await client.start()
    except BaseException:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise
    return client
