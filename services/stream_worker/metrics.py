"""The stream worker's Prometheus metrics, named ``coinstream_stream_*``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_DURATION = Histogram(
    "coinstream_stream_batch_duration_seconds",
    "Wall time of one micro-batch: transform, warehouse load and MERGE, offset commit.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
BATCH_PHASE = Histogram(
    "coinstream_stream_batch_phase_seconds",
    "Wall time of one step of a micro-batch (Spark planning and collect, Parquet encoding, each "
    "warehouse call, the offset commit), by phase; the batch's log line lists the same phases.",
    ["phase"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS_WRITTEN = Counter(
    "coinstream_stream_rows_written_total",
    "Rows a micro-batch sent to the warehouse MERGE, by table (a re-run batch counts again).",
    ["table"],
)
ROWS_QUARANTINED = Counter(
    "coinstream_stream_rows_quarantined_total",
    "Kafka messages the worker could not turn into rows, sent to the quarantine table.",
)
LAST_BATCH = Gauge(
    "coinstream_stream_last_batch_timestamp_seconds", "Unix time the last micro-batch finished."
)
INPUT_ROWS_PER_SECOND = Gauge(
    "coinstream_stream_input_rows_per_second", "Spark's input rate of the last micro-batch."
)
BATCH_FAILURES = Counter(
    "coinstream_stream_batch_failures_total",
    "Micro-batches that failed; the query restarts from its checkpoint and runs them again.",
)
OFFSETS_LOST = Counter(
    "coinstream_stream_offsets_lost_total",
    "Kafka records deleted (by retention) before the worker read them, by topic; each lost "
    "range also has a quarantine row.",
    ["topic"],
)
