"""Services log our own lines as JSON; libraries' chatter stays out of the way."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from shared.logging import LIBRARY_LOG_LEVELS, configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    library_levels = {name: logging.getLogger(name).level for name in LIBRARY_LOG_LEVELS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in library_levels.items():
        logging.getLogger(name).setLevel(library_level)


@pytest.mark.usefixtures("restore_logging")
def test_our_lines_stay_and_library_chatter_goes(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("stream-worker", "INFO")
    logging.getLogger("services.stream_worker.worker").info("batch %d: 3 assets", 7)
    # What py4j logs on every trigger of a streaming query with foreachBatch.
    logging.getLogger("py4j.clientserver").info("Received command c on object id p0")
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("py4j.java_gateway").warning("the gateway is gone")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["message"] for line in lines] == ["batch 7: 3 assets", "the gateway is gone"]
    assert lines[0]["service"] == "stream-worker"
    assert lines[0]["level"] == "INFO"
    assert lines[0]["logger"] == "services.stream_worker.worker"
