"""A batch interrupted by the worker's own stop leaves no traceback in its log; any other
failure of a batch keeps py4j's whole record of it."""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
import threading

import py4j.clientserver
import pytest
from py4j.clientserver import ClientServerConnection

from services.stream_worker.interrupted_batch import (
    PY4J_CALLBACK_FAILURE,
    PY4J_CALLBACK_LOGGER,
    InterruptedBatchFilter,
)


def test_the_record_filtered_is_the_one_py4j_logs_for_a_failed_callback() -> None:
    """Pinned to py4j's own source, so an upgrade that rewords it fails here."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(ClientServerConnection._call_proxy)))
    messages = [
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "exception"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ]
    assert [m for m in messages if isinstance(m, str) and m.startswith(PY4J_CALLBACK_FAILURE)]
    module_source = inspect.getsource(py4j.clientserver)
    assert f'logger = logging.getLogger("{PY4J_CALLBACK_LOGGER}")' in module_source


def test_a_failed_batch_is_logged_by_py4j_unless_the_query_is_being_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopping = threading.Event()
    py4j_logger = logging.getLogger(PY4J_CALLBACK_LOGGER)
    quiet = InterruptedBatchFilter(stopping)
    py4j_logger.addFilter(quiet)
    try:
        with caplog.at_level(logging.ERROR, logger=PY4J_CALLBACK_LOGGER):
            for stopping_now in (False, True):
                if stopping_now:
                    stopping.set()
                try:
                    raise RuntimeError("ClosedByInterruptException")
                except RuntimeError:
                    py4j_logger.exception(
                        "There was an exception while executing the Python Proxy on the "
                        "Python Side."
                    )
    finally:
        py4j_logger.removeFilter(quiet)
    logged = [record for record in caplog.records if record.name == PY4J_CALLBACK_LOGGER]
    assert len(logged) == 1 and logged[0].exc_info is not None  # the one before the stop
