"""Reading the control topic: a watcher for asyncio code, and the same watcher on a thread.

Both read the topic from the beginning and then follow it, keeping the newest state per
component and calling back on each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from types import MappingProxyType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared.control_state.models import DesiredState, control_topic, with_defaults
from shared.kafka import (
    START_GRACE_SECONDS,
    ensure_topics,
    kafka_client_config,
    topic_partitions,
)
from shared.settings import KafkaSettings

logger = logging.getLogger(__name__)

RECONNECT_MAX_SECONDS = 10.0
FIRST_RECONNECT_SECONDS = 0.5
FETCH_WAIT_MS = 500


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
        settings: KafkaSettings,
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
        return with_defaults(self._states)

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
        started = time.monotonic()
        ever_connected = False
        warned = False  # about the outage in progress
        backoff = FIRST_RECONNECT_SECONDS
        while True:
            try:
                await self._read_until_failure()
            except (KafkaError, OSError) as error:
                if self.connected:  # an outage begins
                    ever_connected, warned = True, False
                    backoff = FIRST_RECONNECT_SECONDS  # it worked for a while: retry quickly
                starting = not ever_connected and time.monotonic() - started < START_GRACE_SECONDS
                if starting and self.last_error is None:
                    logger.info(
                        "waiting for Kafka to read desired states from %s (%s)",
                        self.settings.topic_control,
                        error or type(error).__name__,
                    )
                elif not starting and not warned:
                    warned = True
                    logger.warning(
                        "cannot read desired states from %s: %s; keeping the last known ones "
                        "and retrying",
                        self.settings.topic_control,
                        error or type(error).__name__,
                    )
                self.connected = False
                self.last_error = f"{type(error).__name__}: {error}"
                if starting:
                    # The broker is starting beside this process: whatever waits for the
                    # desired states (the first poll) waits on the try that succeeds.
                    await asyncio.sleep(FIRST_RECONNECT_SECONDS)
                    continue
            except Exception as error:
                ever_connected = ever_connected or self.connected
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
            **kafka_client_config(self.settings),
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


async def _partitions_of(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    """The control topic's partitions; KafkaError while the topic is not there (yet)."""
    numbers = (await topic_partitions(settings, [topic])).get(topic)
    if not numbers:
        raise KafkaError(f"topic {topic} does not exist (yet)")
    return [TopicPartition(topic, number) for number in numbers]


class DesiredStateThread:
    """A ``DesiredStateWatcher`` on an event loop of its own thread, for synchronous programs.

    ``get`` and ``snapshot`` may be called from any thread. ``on_change`` runs on the watcher's
    thread: keep it short (set a flag or an ``threading.Event``).
    """

    def __init__(
        self,
        settings: KafkaSettings,
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
            return with_defaults({})
        return self._watcher.snapshot()

    def stop(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(TimeoutError):
                self._call(self._watcher.stop(), 10.0)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
