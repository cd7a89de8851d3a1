"""The desired state of each pipeline component, kept in a compacted Kafka topic.

The control service writes one record per change (key: the component's name; value: JSON with
the desired state, a restart counter, who asked and when). Compaction keeps the newest record per
key for good, so the desired state outlives a restart of the component and of the control
service, and every replica of a component reads the same answer. Components only read:

- asyncio code (the ingestors) runs a ``DesiredStateWatcher``, which reads the topic from the
  beginning and then follows it, calling back on each change;
- threaded code (the Spark stream worker) runs a ``DesiredStateThread``, the same watcher on an
  event loop of its own thread, or calls ``fetch_desired_states`` once per trigger.

A component with no record is RUNNING: no command was ever given for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.kafka import TopicSpec, create_producer, ensure_topics, topic_partitions
from shared.settings import Settings

logger = logging.getLogger(__name__)

COMPONENTS: tuple[str, ...] = ("asset-ingestor", "exchange-ingestor", "stream-worker")
"""Every component the control service commands, by the name used as the record key."""

RECONNECT_MAX_SECONDS = 10.0
FETCH_WAIT_MS = 500


class Desired(StrEnum):
    """What a component should be doing.

    RUNNING: working. PAUSED: alive and connected, doing no work (an ingestor does not poll, so
    spends no API credits; the worker consumes nothing). STOPPED: alive only to answer
    ``/healthz`` and to follow this topic; it has also released its Kafka producer or query.
    """

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"


class DesiredState(BaseModel):
    """One component's desired state, as stored in the control topic."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = 1
    component: str = Field(description="The component's name, also the record key.")
    state: Desired = Field(default=Desired.RUNNING, description="What it should be doing.")
    restart_generation: int = Field(
        default=0,
        ge=0,
        description="Grows by one with each restart command; a component that sees it grow "
        "restarts its work once.",
    )
    requested_by: str | None = Field(default=None, description="Who gave the last command.")
    requested_at: datetime | None = Field(default=None, description="When it was given.")
    reason: str | None = Field(default=None, description="Why, as the requester said.")

    @classmethod
    def default(cls, component: str) -> DesiredState:
        """The state of a component nobody has commanded: RUNNING."""
        return cls(component=component)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None) -> DesiredState | None:
        """Parse a control record; a tombstone (no value) resets the key's component to the
        default. None for a record that cannot be understood (logged)."""
        if key is None:
            logger.warning("control record without a key ignored")
            return None
        component = key.decode(errors="replace")
        if value is None:
            return cls.default(component)
        try:
            state = cls.model_validate_json(value)
        except ValidationError as error:
            logger.warning("control record for %s ignored: %s", component, error)
            return None
        if state.component != component:
            logger.warning(
                "control record keyed %s names component %s; ignored", component, state.component
            )
            return None
        return state


def control_topic(settings: Settings) -> TopicSpec:
    """The compacted control topic: one partition, so one read shows every component in order."""
    return TopicSpec(
        settings.topic_control,
        partitions=1,
        replication_factor=settings.topic_replication_factor,
        retention_hours=None,
        compact=True,
    )


def _with_defaults(states: Mapping[str, DesiredState]) -> dict[str, DesiredState]:
    return {
        **{component: DesiredState.default(component) for component in COMPONENTS},
        **states,
    }


# --- writing -----------------------------------------------------------------------------------


class DesiredStateWriter:
    """Writes desired states; used by the control service only."""

    def __init__(self, settings: Settings, client_id: str = "coinstream-control") -> None:
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


# --- reading, asyncio --------------------------------------------------------------------------


class DesiredStateWatcher:
    """Follows the control topic in the background and keeps the newest state per component.

    ``on_change(state)`` (optional) is called on the event loop: once for every component when
    the watcher has first read the topic to its end (``caught_up``), then whenever a
    component's state changes. Until then ``get`` answers the default (RUNNING); a component
    that must not act on a guess waits for ``wait_caught_up`` first.

    While Kafka is unreachable the watcher keeps the states it has and reconnects with backoff,
    resuming where it stopped reading (never re-reading older records, which would briefly
    bring back superseded states).
    """

    def __init__(
        self,
        settings: Settings,
        on_change: Callable[[DesiredState], None] | None = None,
        client_id: str = "coinstream-control-watcher",
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._on_change = on_change
        self._states: Mapping[str, DesiredState] = MappingProxyType({})
        self._positions: dict[TopicPartition, int] = {}
        self._caught_up = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.connected = False
        self.last_error: str | None = None

    # --- what it knows ---------------------------------------------------------------------

    @property
    def caught_up(self) -> bool:
        """True once the topic has been read to the end it had when the watcher started."""
        return self._caught_up.is_set()

    def get(self, component: str) -> DesiredState:
        """The newest desired state of ``component`` (RUNNING when none was ever written)."""
        return self._states.get(component) or DesiredState.default(component)

    def snapshot(self) -> dict[str, DesiredState]:
        """Every known component's desired state, including defaults for ``COMPONENTS``."""
        return _with_defaults(self._states)

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start following the topic in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="control-state-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def wait_caught_up(self) -> None:
        """Wait until the topic has been read to its end (bound it with ``asyncio.timeout``)."""
        await self._caught_up.wait()

    async def wait_for_offset(self, partition: int, offset: int) -> None:
        """Wait until the record at ``offset`` has been read, to read one's own write."""
        position = TopicPartition(self.settings.topic_control, partition)

        def reached() -> bool:
            return self._positions.get(position, -1) > offset

        async with self._progress:
            await self._progress.wait_for(reached)

    async def _follow(self) -> None:
        backoff = 0.5
        while True:
            if self.connected:
                backoff = 0.5  # it worked for a while: retry quickly once more
            try:
                await self._read_until_failure()
            except (KafkaError, OSError) as error:
                if self.connected or self.last_error is None:
                    logger.warning(
                        "cannot read desired states from %s: %s; keeping the last known ones "
                        "and retrying",
                        self.settings.topic_control,
                        error or type(error).__name__,
                    )
                self.connected = False
                self.last_error = f"{type(error).__name__}: {error}"
            except Exception as error:
                # Not Kafka's doing: say so loudly, but keep following rather than go deaf.
                logger.exception("reading %s failed", self.settings.topic_control)
                self.connected = False
                self.last_error = f"{type(error).__name__}: {error}"
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def _read_until_failure(self) -> None:
        topic = control_topic(self.settings)
        await ensure_topics(self.settings, [topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            partitions = await _partitions_of(self.settings, topic.name)
            consumer.assign(partitions)
            for partition in partitions:
                if partition in self._positions:
                    consumer.seek(partition, self._positions[partition])
                else:
                    await consumer.seek_to_beginning(partition)
            end_offsets = await consumer.end_offsets(partitions)
            self.connected = True
            self.last_error = None
            while True:
                batches = await consumer.getmany(timeout_ms=FETCH_WAIT_MS)
                for partition, records in batches.items():
                    for record in records:
                        self._apply(DesiredState.from_record(record.key, record.value))
                    if records:
                        self._positions[partition] = records[-1].offset + 1
                for partition in partitions:
                    self._positions[partition] = max(
                        self._positions.get(partition, 0), await consumer.position(partition)
                    )
                async with self._progress:
                    self._progress.notify_all()
                if not self.caught_up and all(
                    self._positions.get(partition, 0) >= end
                    for partition, end in end_offsets.items()
                ):
                    self._mark_caught_up()
        finally:
            await consumer.stop()

    def _apply(self, state: DesiredState | None) -> None:
        if state is None or self._states.get(state.component) == state:
            return
        self._states = MappingProxyType({**self._states, state.component: state})
        if self.caught_up:
            logger.info(
                "desired state of %s is now %s (restart generation %d, by %s)",
                state.component,
                state.state,
                state.restart_generation,
                state.requested_by,
            )
            self._notify(state)

    def _mark_caught_up(self) -> None:
        self._caught_up.set()
        for state in self.snapshot().values():
            self._notify(state)

    def _notify(self, state: DesiredState) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(state)
        except Exception:
            logger.exception("the desired-state callback failed for %s", state.component)


async def _partitions_of(settings: Settings, topic: str) -> list[TopicPartition]:
    """The control topic's partitions; KafkaError while the topic is not there (yet)."""
    numbers = (await topic_partitions(settings, [topic])).get(topic)
    if not numbers:
        raise KafkaError(f"topic {topic} does not exist (yet)")
    return [TopicPartition(topic, number) for number in numbers]


# --- reading, threads --------------------------------------------------------------------------


class DesiredStateThread:
    """A ``DesiredStateWatcher`` on an event loop of its own thread, for synchronous programs.

    ``get`` and ``snapshot`` may be called from any thread. ``on_change`` runs on the watcher's
    thread: keep it short (set a flag or an ``threading.Event``).
    """

    def __init__(
        self,
        settings: Settings,
        on_change: Callable[[DesiredState], None] | None = None,
        client_id: str = "coinstream-control-watcher",
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="control-state-watcher", daemon=True
        )
        self._watcher: DesiredStateWatcher | None = None
        self._settings = settings
        self._on_change = on_change
        self._client_id = client_id

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def start(self) -> None:
        """Start following the topic; returns at once (see ``wait_caught_up``)."""
        self._thread.start()

        async def create_and_start() -> DesiredStateWatcher:
            watcher = DesiredStateWatcher(self._settings, self._on_change, self._client_id)
            await watcher.start()
            return watcher

        self._watcher = self._call(create_and_start(), 10.0)

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until the topic has been read to its end; False if ``timeout`` passed."""
        assert self._watcher is not None, "start() first"
        if self._watcher.caught_up:
            return True
        future = asyncio.run_coroutine_threadsafe(self._watcher.wait_caught_up(), self._loop)
        try:
            future.result(timeout)
        except TimeoutError:
            future.cancel()
            return False
        return True

    @property
    def caught_up(self) -> bool:
        return self._watcher is not None and self._watcher.caught_up

    def get(self, component: str) -> DesiredState:
        """The newest desired state of ``component`` (RUNNING when none was ever written)."""
        if self._watcher is None:
            return DesiredState.default(component)
        return self._watcher.get(component)

    def snapshot(self) -> dict[str, DesiredState]:
        if self._watcher is None:
            return _with_defaults({})
        return self._watcher.snapshot()

    def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError):
                self._call(self._watcher.stop(), 10.0)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)


# --- reading once --------------------------------------------------------------------------------


async def read_desired_states(
    settings: Settings, within_seconds: float = 10.0
) -> dict[str, DesiredState]:
    """Read the control topic from the beginning to its current end, once.

    Every component in ``COMPONENTS`` is in the answer (RUNNING when never commanded; likewise
    for all of them when the topic does not exist yet). Raises ``KafkaError`` or
    ``TimeoutError`` when the broker does not answer within ``within_seconds``.
    """
    states: dict[str, DesiredState] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="coinstream-control-reader",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(within_seconds * 1000),
    )
    async with asyncio.timeout(within_seconds):
        await consumer.start()
        try:
            numbers = (await topic_partitions(settings, [settings.topic_control])).get(
                settings.topic_control
            )
            if not numbers:
                return _with_defaults({})  # no command was ever given
            partitions = [TopicPartition(settings.topic_control, n) for n in numbers]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end_offsets = await consumer.end_offsets(partitions)
            remaining = {p for p, end in end_offsets.items() if end > 0}
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=FETCH_WAIT_MS)
                for records in batches.values():
                    for record in records:
                        state = DesiredState.from_record(record.key, record.value)
                        if state is not None:
                            states[state.component] = state
                for partition in list(remaining):
                    if await consumer.position(partition) >= end_offsets[partition]:
                        remaining.discard(partition)
        finally:
            await consumer.stop()
    return _with_defaults(states)


def fetch_desired_states(
    settings: Settings, within_seconds: float = 10.0
) -> dict[str, DesiredState]:
    """``read_desired_states`` for synchronous code (a thread with no running event loop)."""
    return asyncio.run(read_desired_states(settings, within_seconds))
