"""The dashboard's Prometheus metrics: how long each API query waits on the warehouse.

Served at ``/metrics`` and scraped like every service's; a slow or failing warehouse shows as
the ``unavailable`` outcome and the tail of the histogram, per query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

from shared.warehouse import WarehouseUnavailable

QUERY_SECONDS = Histogram(
    "coinstream_dashboard_query_duration_seconds",
    "Time the dashboard waited on the warehouse for one API query, by query (e.g. "
    "assets_latest, exchanges_status) and outcome (ok; unavailable: the warehouse did not "
    "answer; error: the warehouse refused the query).",
    ["query", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


@contextmanager
def timed_query(query: str) -> Iterator[None]:
    """Observe the block's wall time under ``query`` and how it ended."""
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except WarehouseUnavailable:
        outcome = "unavailable"
        raise
    finally:
        QUERY_SECONDS.labels(query, outcome).observe(time.perf_counter() - started)
