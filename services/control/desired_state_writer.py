"""Writing desired states to the control topic: the control service is the only writer."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.control_state import DesiredState, control_topic
from shared.kafka import create_producer, ensure_topics
from shared.settings import ControlServiceSettings


class DesiredStateWriter:
    """Writes desired states; used by the control service only."""

    def __init__(
        self, settings: ControlServiceSettings, client_id: str = "coinstream-control"
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def write(self, state: DesiredState) -> tuple[int, int]:
        """Store ``state`` with every in-sync replica; return its (partition, offset).

        Raises ``KafkaError`` (or ``OSError``) when the broker does not take it.
        """
        producer = await self._started_producer()
        try:
            metadata = await producer.send_and_wait(
                self.settings.topic_control, state.to_bytes(), key=state.component.encode()
            )
        except (KafkaError, OSError):
            # A producer that failed once may be stuck on a dead connection; start afresh.
            await self.stop()
            raise
        return metadata.partition, metadata.offset

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(self.settings, [control_topic(self.settings)])
            producer = create_producer(self.settings, client_id=self.client_id)
            try:
                await producer.start()
            except (KafkaError, OSError):
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), 5.0)
