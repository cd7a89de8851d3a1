"""An ingestor refuses to start, with one line, when its buffer could not hold one poll."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.processes import subprocess_environment
from shared.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_a_buffer_smaller_than_one_poll_is_refused_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.ingestor", "assets"],
        cwd=PROJECT_ROOT,
        env=subprocess_environment(
            {"COINSTREAM_INGEST_BUFFER_MAX_RECORDS": "10", "COINSTREAM_COINCAP_PAGE_LIMIT": "100"}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coinstream: ")
    assert "COINSTREAM_INGEST_BUFFER_MAX_RECORDS (10)" in lines[0] and "at least 100" in lines[0]
