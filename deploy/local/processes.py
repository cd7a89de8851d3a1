"""Our processes, run the way ``make run`` runs them, for tests and benchmarks.

``ManagedProcess`` starts one command with its output in a log file; ``LocalStack`` is the broker
and the emulator with the settings that reach them. ``make run`` itself uses honcho instead
(``supervisor.run``); these exist so that a test can stop and restart one piece at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import UnknownTopicOrPartitionError, for_code
from aiokafka.structs import ConsumerRecord
from tenacity import AsyncRetrying, retry_if_result, stop_after_delay, wait_fixed

from deploy.local.errors import StackError
from deploy.local.readiness import wait_for_bigquery_emulator, wait_for_kafka
from shared.settings import PROJECT_ROOT, Settings


def settings_from(environment: dict[str, str]) -> Settings:
    """Settings as a subprocess started with ``environment`` would read them."""
    values: dict[str, Any] = {
        key.removeprefix("COINSTREAM_").lower(): value for key, value in environment.items()
    }
    return Settings(_env_file=None, **values)


def subprocess_environment(overrides: dict[str, str]) -> dict[str, str]:
    """Our environment without any COINSTREAM_ setting of the developer's, plus ``overrides``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("COINSTREAM_")}
    return {**base, "PYTHONUNBUFFERED": "1", "COINSTREAM_ENV_FILE": os.devnull, **overrides}


class ManagedProcess:
    """One of our processes, started as ``make run`` starts it, with its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], environment: dict[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.environment = subprocess_environment(environment)
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stack_process(component: str, environment: dict[str, str], log_dir: Path) -> ManagedProcess:
    """A local-stack component (``kafka`` or ``bigquery``)."""
    argv = [sys.executable, "-m", "deploy.local.stack", component]
    return ManagedProcess(component, argv, environment, log_dir)


class LocalStack:
    """The broker and the emulator, with the settings that reach them."""

    def __init__(self, environment: dict[str, str], state_dir: Path) -> None:
        self.environment = environment
        self.settings = settings_from(environment)
        self.kafka = stack_process("kafka", environment, state_dir / "logs")
        self.bigquery = stack_process("bigquery", environment, state_dir / "logs")
        self.start_seconds: dict[str, float] = {}

    def start(self) -> None:
        self.kafka.start()
        self.bigquery.start()
        self.wait_ready()

    def restart_kafka(self) -> None:
        self.kafka.stop()
        self.kafka.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        for name, process, wait in (
            ("kafka", self.kafka, wait_for_kafka),
            ("bigquery", self.bigquery, wait_for_bigquery_emulator),
        ):
            try:
                self.start_seconds[name] = wait(self.settings, 90.0, process.is_running)
            except StackError as error:
                raise StackError(
                    f"{error}\n--- {process.log_path} ---\n{process.log_tail()}"
                ) from None

    def stop(self) -> None:
        self.kafka.stop()
        self.bigquery.stop()


SHORT_READ_RETRY_SECONDS = 30.0
"""How long ``read_topic`` tries again when it read fewer messages than ``expected``."""


async def read_topic(
    bootstrap_servers: str,
    topic: str,
    expected: int | None = None,
    idle_seconds: float = 3.0,
    read_seconds: float = 120.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of ``topic`` from the start to its end offsets, in offset order per
    partition; an empty list for a topic that does not exist.

    With ``expected``, it first waits until the topic's offsets cover that many messages (or
    until they have not grown for ``idle_seconds``). Either way it then reads up to the end
    offsets the broker reports at that moment, never stopping at a count: a copy published
    after the Nth message is read too, so the caller's count and duplicate checks see it.
    Reading that has not reached those offsets within ``read_seconds`` raises TimeoutError.

    A read that comes back with fewer than ``expected`` messages is made again, with new
    clients, for up to ``SHORT_READ_RETRY_SECONDS``: on a loaded machine a fresh client has
    been seen to describe a topic that holds messages as unknown, or to see its offsets at 0.
    A topic really short of ``expected`` still comes back short, so the caller's count fails.
    """
    retrying = AsyncRetrying(
        stop=stop_after_delay(SHORT_READ_RETRY_SECONDS),
        wait=wait_fixed(1.0),
        retry=retry_if_result(lambda read: expected is not None and len(read) < expected),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else [],
    )
    read: list[ConsumerRecord[bytes, bytes]] = await retrying(
        _read_topic_once, bootstrap_servers, topic, expected, idle_seconds, read_seconds
    )
    return read


async def _read_topic_once(
    bootstrap_servers: str,
    topic: str,
    expected: int | None,
    idle_seconds: float,
    read_seconds: float,
) -> list[ConsumerRecord[bytes, bytes]]:
    partitions = [
        TopicPartition(topic, number)
        for number in await _partition_numbers(bootstrap_servers, topic)
    ]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    messages: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign(partitions)
        ends = await _end_offsets_covering(consumer, partitions, expected, idle_seconds)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(read_seconds):
            while not await _reached(consumer, ends):
                batches = await consumer.getmany(timeout_ms=500)
                for partition, batch in batches.items():
                    messages.extend(m for m in batch if m.offset < ends[partition])
    finally:
        await consumer.stop()
    return sorted(messages, key=lambda message: (message.partition, message.offset))


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return False
    return True


async def _partition_numbers(bootstrap_servers: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] == UnknownTopicOrPartitionError.errno:
        return []
    if described["error_code"]:
        # Never "no messages" for a topic the broker could not describe just now.
        raise for_code(described["error_code"])(f"could not describe topic {topic}")
    return sorted(partition["partition"] for partition in described["partitions"])


async def _end_offsets_covering(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    expected: int | None,
    idle_seconds: float,
) -> dict[TopicPartition, int]:
    """The end offsets once they cover ``expected`` messages past the log starts, or once they
    have stopped growing for ``idle_seconds``."""
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    grew_at = time.monotonic()
    while expected is not None and sum(ends[p] - starts[p] for p in partitions) < expected:
        if time.monotonic() - grew_at > idle_seconds:
            break
        await asyncio.sleep(0.2)
        latest = await consumer.end_offsets(partitions)
        if latest != ends:
            ends, grew_at = latest, time.monotonic()
    return ends
