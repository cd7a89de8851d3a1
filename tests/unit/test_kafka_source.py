"""The stream worker's Kafka source options that set how fast a steady batch reads."""

from __future__ import annotations

from services.stream_worker.kafka_source import kafka_source_options
from shared.settings import Settings


def test_the_broker_parks_an_empty_fetch_ten_milliseconds_not_kafkas_half_second() -> None:
    """Every task's last fetch finds the log's end and waits this long (see FETCH_MAX_WAIT_MS);
    at Kafka's 500 ms default a steady batch took 2.85 s instead of 1.33 s (its read 1.97 s
    instead of 0.48 s). Spark hands
    ``kafka.``-prefixed options to the executors' consumers with the prefix cut off."""
    options = kafka_source_options(Settings(_env_file=None))
    assert options["kafka.fetch.max.wait.ms"] == "10"
