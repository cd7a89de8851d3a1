"""The fault suite's pipeline: one per test module, its figures appended to the chaos report.

``make chaos`` runs every case here; ``make test`` runs only the fast ones (marked
``integration``). ``COINSTREAM_CHAOS_LONG_MINUTES`` sets the long run's length (default 10),
``COINSTREAM_CHAOS_WORKER_KILLS`` the random worker kills (default 20),
``COINSTREAM_CHAOS_INGESTOR_KILLS`` the rounds of ingestor kills during broker outages (default
3).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.pipeline import ChaosPipeline
from tests.harness.processes import LocalStack


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[ChaosPipeline]:
    """The whole pipeline running and writing, named after the test module."""
    name = f"chaos-{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
    running = ChaosPipeline(local_stack, name.replace("_", "-"))
    try:
        running.start()
        yield running
    finally:
        running.stop()
