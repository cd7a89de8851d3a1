"""Prometheus exposition shared by every service: ``GET /metrics`` and the registry's settings.

Each service defines its own ``coinstream_*`` metrics in its package (``services/*/metrics.py``);
each process has one registry, prometheus_client's default.
"""

from __future__ import annotations

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, disable_created_metrics, generate_latest

# The *_created series double every counter for no use of ours. prometheus_client reads this
# switch at each scrape, not when a metric is made, so importing this module anywhere before the
# first scrape is enough (every service's app does, for ``/metrics``), whatever it imports first.
disable_created_metrics()  # type: ignore[no-untyped-call]


def metrics_endpoint() -> Response:
    """``GET /metrics`` for any of our FastAPI services, in Prometheus' text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
