"""Helpers for the control service's tests: waiting on conditions, the API, processes, offsets."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.readiness import http_answers
from shared.kafka import topic_partitions
from shared.settings import Settings
from tests.conftest import ManagedProcess, wait_for


def launch(
    name: str,
    module: str,
    environment: dict[str, str],
    log_dir: Path,
    arguments: tuple[str, ...] = (),
) -> ManagedProcess:
    """``python -m module [arguments]``, started; see ``wait_until_answering``."""
    argv = [sys.executable, "-m", module, *arguments]
    process = ManagedProcess(name, argv, environment, log_dir)
    process.start()
    return process


def wait_until_answering(process: ManagedProcess, health_url: str) -> None:
    def up() -> bool:
        assert process.is_running(), f"{process.name} exited:\n{process.log_tail(30)}"
        return http_answers(health_url)

    wait_for(up, f"for {process.name} to answer {health_url}", 60)


def start_process(
    name: str,
    module: str,
    environment: dict[str, str],
    log_dir: Path,
    health_url: str,
    arguments: tuple[str, ...] = (),
) -> ManagedProcess:
    """``python -m module [arguments]`` started and answering ``health_url``."""
    process = launch(name, module, environment, log_dir, arguments)
    wait_until_answering(process, health_url)
    return process


class ControlApi:
    """The control service over HTTP, as a client would use it."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url
        self.token = token

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=20)

    def json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def component(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.json(f"/components/{name}")
        return body

    def command(
        self,
        name: str,
        command: str,
        token: str | None = None,
        anonymous: bool = False,
        **request: Any,
    ) -> httpx.Response:
        """``PUT`` (or ``POST`` for restart) a command, with our token, ``token``, or none."""
        headers = dict(request.pop("headers", {}))
        sent = None if anonymous else token or self.token
        if sent is not None:
            headers["Authorization"] = f"Bearer {sent}"
        return httpx.request(
            "POST" if command == "restart" else "PUT",
            f"{self.base_url}/components/{name}/{command}",
            headers=headers,
            timeout=20,
            **request,
        )


# --- what the broker says ------------------------------------------------------------------


async def broker_offsets(
    settings: Settings, group: str, topics: list[str]
) -> dict[tuple[str, int], tuple[int, int | None]]:
    """Per (topic, partition): log end offset and the group's committed offset, from the
    broker, independently of the control service."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics(topics)
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic["partitions"]
        ]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await consumer.stop()
        await admin.close()
    answer: dict[tuple[str, int], tuple[int, int | None]] = {}
    for partition in partitions:
        entry = committed.get(partition)
        answer[(partition.topic, partition.partition)] = (
            ends[partition],
            entry.offset if entry is not None and entry.offset >= 0 else None,
        )
    return answer


def topic_end_total(settings: Settings, topic: str) -> int:
    async def total() -> int:
        numbers = (await topic_partitions(settings, [topic])).get(topic, [])
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, n) for n in numbers])
        finally:
            await consumer.stop()
        return sum(ends.values())

    return asyncio.run(total())


# --- a stand-in for the stream worker --------------------------------------------------------
