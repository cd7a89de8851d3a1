"""JSON-line logging for every service: one object per line, with the service's name in it."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LIBRARY_LOG_LEVELS = {
    # aiokafka logs every refused connection while a broker is down as an error; our own
    # buffer and metrics report the outage once, clearly.
    "aiokafka": logging.CRITICAL,
    # httpx logs every request at INFO; our metrics count them.
    "httpx": logging.WARNING,
    # py4j, the bridge between the worker and Spark's JVM, logs every call back into Python
    # ("Received command c on object id p0", on each trigger) and each socket it closes at
    # INFO; its real failures reach us as exceptions from pyspark.
    "py4j": logging.WARNING,
    # uvicorn's lifecycle lines (server process started, startup complete, shutting down...):
    # eight per service per run. Where each service listens is in `make run`'s ready line.
    # Its errors (an exception in a request) are logged at ERROR and still show.
    "uvicorn.error": logging.WARNING,
}
"""Library loggers whose INFO (or ERROR) lines repeat what our own lines and metrics say."""


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger (ours and the libraries') to stdout as JSON lines.

    Everything logs from ``level`` up, except the libraries in ``LIBRARY_LOG_LEVELS``, which
    are held to theirs.
    """
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
            timestamp=False,
            # uvicorn adds an ANSI-coloured copy of its messages; one copy is enough.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for library, library_level in LIBRARY_LOG_LEVELS.items():
        logging.getLogger(library).setLevel(library_level)
