"""The fault suite's pipeline: one per test module, its figures appended to the chaos report.

``make chaos`` runs every case here and the fast cases in
``tests/integration/test_fast_faults.py`` (which ``make test`` runs too).
``COINSTREAM_CHAOS_LONG_MINUTES`` sets the long run's length (default 10),
``COINSTREAM_CHAOS_WORKER_KILLS`` the random worker kills (default 20),
``COINSTREAM_CHAOS_INGESTOR_KILLS`` the rounds of ingestor kills during broker outages (default
3).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.faults import fault_suite_pipeline
from tests.harness.pipeline import Pipeline
from tests.harness.processes import LocalStack


@pytest.fixture(scope="module")
def pipeline(local_stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """The whole pipeline running and writing, named after the test module."""
    name = f"chaos-{request.module.__name__.rsplit('.', 1)[-1].removeprefix('test_')}"
    with fault_suite_pipeline(name.replace("_", "-")) as running:
        yield running
