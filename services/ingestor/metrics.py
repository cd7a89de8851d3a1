"""The ingestors' Prometheus metrics, named ``coinstream_*`` with the usual suffixes.

The ``ingestor`` label keeps the asset and exchange ingestors apart where one scrape config
collects both.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

import shared.metrics  # noqa: F401  (turns off the *_created series before these are made)

COINCAP_REQUESTS = Counter(
    "coinstream_coincap_requests_total",
    "CoinCap HTTP requests, by endpoint and status code ('error' for no answer).",
    ["endpoint", "status"],
)
COINCAP_REQUEST_DURATION = Histogram(
    "coinstream_coincap_request_duration_seconds",
    "Duration of CoinCap HTTP requests.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
COINCAP_CREDITS_USED = Counter(
    "coinstream_coincap_credits_used_total",
    "CoinCap credits spent by successful requests.",
    ["ingestor"],
)
COINCAP_QUOTA_EXHAUSTED = Gauge(
    "coinstream_coincap_quota_exhausted",
    "1 while polling is paused because CoinCap says the quota is spent.",
    ["ingestor"],
)
POLLS = Counter("coinstream_polls_total", "Polls of CoinCap, by outcome.", ["ingestor", "outcome"])
POLL_INTERVAL = Gauge(
    "coinstream_poll_interval_seconds", "Seconds between polls in force.", ["ingestor"]
)
LAST_SUCCESSFUL_POLL = Gauge(
    "coinstream_last_successful_poll_timestamp_seconds",
    "Unix time of the last poll that fetched a complete listing.",
    ["ingestor"],
)
RECORDS_PRODUCED = Counter(
    "coinstream_records_produced_total",
    "Records delivered to Kafka (acknowledged by all in-sync replicas), by topic.",
    ["ingestor", "topic"],
)
RECORDS_DEAD_LETTERED = Counter(
    "coinstream_records_dead_lettered_total",
    "Records that failed validation and were sent to the dead-letter topic.",
    ["ingestor"],
)
RECORDS_DROPPED = Counter(
    "coinstream_records_dropped_total",
    "Records lost because the delivery buffer overflowed or shutdown could not flush them.",
    ["ingestor", "reason"],
)
BUFFER_RECORDS = Gauge(
    "coinstream_ingest_buffer_records",
    "Records fetched but not yet acknowledged by Kafka.",
    ["ingestor"],
)
KAFKA_SEND_FAILURES = Counter(
    "coinstream_kafka_send_failures_total",
    "Records the Kafka producer could not take or Kafka refused; kept for another try.",
    ["ingestor"],
)
RECORDS_RESENT = Counter(
    "coinstream_records_resent_total",
    "Records sent again after their producer was replaced before Kafka answered for them "
    "(it stalled, or a restart or shutdown could not wait): each may be in Kafka twice.",
    ["ingestor"],
)
