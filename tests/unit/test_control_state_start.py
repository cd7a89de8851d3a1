"""A service started beside its broker (``make run``, Compose) waits for it quietly and closely:
one INFO line, tries every half second, and a warning only once the wait is no longer a start."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from shared.control_state import watcher
from shared.control_state.watcher import DesiredStateWatcher
from shared.settings import KafkaSettings


def closed_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings_without_broker() -> KafkaSettings:
    return KafkaSettings(_env_file=None, kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}")


async def follow_for(seconds: float) -> DesiredStateWatcher:
    state_watcher = DesiredStateWatcher(settings_without_broker(), client_id="start-test")
    await state_watcher.start()
    await asyncio.sleep(seconds)
    await state_watcher.stop()
    return state_watcher


async def test_a_broker_still_starting_is_one_info_line_and_quick_tries(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries = 0
    read_until_failure = DesiredStateWatcher._read_until_failure

    async def counted(self: DesiredStateWatcher) -> None:
        nonlocal tries
        tries += 1
        await read_until_failure(self)

    monkeypatch.setattr(DesiredStateWatcher, "_read_until_failure", counted)
    with caplog.at_level(logging.INFO, logger="shared.control_state"):
        state_watcher = await follow_for(2.4)
    assert state_watcher.last_error is not None and not state_watcher.connected
    assert [record.levelno for record in caplog.records] == [logging.INFO]
    assert "waiting for Kafka to read desired states" in caplog.messages[0]
    # Every 0.5 s while starting (a backoff doubling from 0.5 s would have made three).
    assert tries >= 4


async def test_past_the_start_grace_the_wait_is_a_warning_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher, "START_GRACE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="shared.control_state"):
        await follow_for(2.0)
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "cannot read desired states" in caplog.messages[0]
