"""The stream worker waiting for a broker that does not answer: one INFO line while it may still
be starting, then a warning once each grace period rather than at every try."""

from __future__ import annotations

import logging
import socket

import pytest
from aiokafka.errors import KafkaConnectionError

from services.stream_worker import startup
from shared.settings import WorkerSettings


def closed_port() -> int:
    """A port nothing listens on (bound and released: connections to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_long_wait_warns_once_per_grace_period_not_at_every_try(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tries at 0, 0.25, 0.75, 1.75, 3.75, 5.75, 7.75 s (the pause doubles up to 2 s); the grace
    # (2.5 s) ends between the fourth and the fifth.
    monkeypatch.setattr(startup, "START_GRACE_SECONDS", 2.5)
    monkeypatch.setattr(startup, "DEPENDENCY_PATIENCE_SECONDS", 8.0)
    settings = WorkerSettings(_env_file=None, kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}")
    reasons: list[str] = []
    with (
        caplog.at_level(logging.DEBUG, logger=startup.logger.name),
        pytest.raises(KafkaConnectionError),
    ):
        startup.prepare_dependencies(settings, on_wait=reasons.append)
    levels = [r.levelno for r in caplog.records if r.name == startup.logger.name]
    assert levels[0] == logging.INFO
    assert set(levels[1:4]) == {logging.DEBUG}  # within the grace: quiet
    assert levels.count(logging.WARNING) == 2, levels
    assert levels[-3:] == [logging.WARNING, logging.DEBUG, logging.WARNING], levels
    assert len(reasons) == len(levels)  # the worker's status hears of every try
    assert all(reason.startswith("waiting for Kafka and the warehouse") for reason in reasons)
