"""The ingestors' Prometheus metrics, named ``coinstream_*`` with the usual suffixes.

The ``ingestor`` label keeps the asset and exchange ingestors apart where one scrape config
collects both.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
    "Records sent to the dead-letter topic: invalid, or unable to be a Kafka message as "
    "received (too large, not valid Unicode).",
    ["ingestor"],
)
POLL_LOOP_FAILURES = Counter(
    "coinstream_ingest_loop_failures_total",
    "Unexpected errors in the poll loop (a bug, or an input no check foresaw), by error type; "
    "the ingestor reports FAILED and tries again by itself after a growing pause.",
    ["ingestor", "error"],
)
RECORDS_DROPPED = Counter(
    "coinstream_records_dropped_total",
    "Records lost: the buffer or spool overflowed, shutdown could not flush or spool them, or "
    "a newer snapshot of their key was already in Kafka.",
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
    "(it stalled, or a restart or shutdown could not wait), or found in the spool when the "
    "ingestor started again: each may be in Kafka twice.",
    ["ingestor"],
)
SPOOL_RECORDS = Gauge(
    "coinstream_ingest_spool_records",
    "Records in the durable spool: fetched, written to disk, not yet all acknowledged.",
    ["ingestor"],
)
SPOOL_BYTES = Gauge(
    "coinstream_ingest_spool_bytes",
    "Bytes of the messages (keys and values) in the durable spool.",
    ["ingestor"],
)
SPOOL_WRITE_DURATION = Histogram(
    "coinstream_ingest_spool_write_duration_seconds",
    "Duration of one spool transaction (a poll written and fsynced, with the removals due).",
    ["ingestor"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
SPOOL_WRITE_FAILURES = Counter(
    "coinstream_ingest_spool_write_failures_total",
    "Spool transactions that failed (disk full, I/O error): the polls are delivered from "
    "memory, and would be lost if the ingestor were killed before Kafka has them.",
    ["ingestor"],
)
SPOOL_SET_ASIDE = Counter(
    "coinstream_ingest_spool_set_aside_total",
    "Spool files found unreadable or of another format at start, moved aside for a fresh one.",
    ["ingestor"],
)
SPOOL_RECOVERED_RECORDS = Counter(
    "coinstream_ingest_spool_recovered_records_total",
    "Records found in the spool at start (fetched by an earlier run, not known to be in "
    "Kafka), delivered before anything newly fetched.",
    ["ingestor"],
)
