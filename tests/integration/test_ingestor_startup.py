"""An ingestor refuses to start, with one line, when its buffer could not hold one poll."""

from __future__ import annotations

from tests.harness.processes import refusal_at_start


def test_a_buffer_smaller_than_one_poll_is_refused_at_start() -> None:
    line = refusal_at_start(
        ["services.ingestor", "assets"],
        {"COINSTREAM_INGEST_BUFFER_MAX_RECORDS": "10", "COINSTREAM_COINCAP_PAGE_LIMIT": "100"},
    )
    assert "COINSTREAM_INGEST_BUFFER_MAX_RECORDS (10)" in line and "at least 100" in line
