"""Logging for every service: JSON lines for machines, or plain coloured lines for people.

``COINSTREAM_LOG_FORMAT`` chooses: ``json`` (one object per line with the service's name in it,
for Compose, files and log collectors), ``console`` (level and message), or ``auto``: console
when stdout is a terminal. ``make run`` resolves ``auto`` by its own terminal and hands the
answer to its processes, whose stdout is a pipe to it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["auto", "json", "console"]

OUR_PACKAGES = ("services", "shared", "deploy", "coinstream")
"""The loggers ``COINSTREAM_LOG_LEVEL=DEBUG`` opens: our own; libraries stay at INFO."""

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

LEVEL_COLOURS = {
    logging.DEBUG: "\x1b[2m",  # dim
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
RESET = "\x1b[0m"


class ConsoleFormatter(logging.Formatter):
    """``INFO    batch 3: 100 assets in 0.61 s``: the level, coloured when ``colour``, and the
    message; the time and the service's name are ``make run``'s prefix."""

    def __init__(self, colour: bool) -> None:
        super().__init__("%(levelname)-7s %(message)s")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        start = LEVEL_COLOURS.get(record.levelno) if self.colour else None
        return f"{start}{line}{RESET}" if start else line


def resolved_format(log_format: LogFormat, stream: TextIO) -> Literal["json", "console"]:
    """``auto`` as console on a terminal, JSON anywhere else."""
    if log_format == "auto":
        return "console" if stream.isatty() else "json"
    return log_format


def json_formatter(service: str) -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
        timestamp=False,
        # uvicorn adds an ANSI-coloured copy of its messages; one copy is enough.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def configure_logging(service: str, level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Send every logger (ours and the libraries') to stdout, in ``log_format``.

    Our own loggers log from ``level`` up; the libraries from INFO (or ``level`` when it is
    higher), except those in ``LIBRARY_LOG_LEVELS``, held to theirs. Console lines are coloured
    unless ``NO_COLOR`` is set (https://no-color.org).
    """
    handler = logging.StreamHandler(sys.stdout)
    if resolved_format(log_format, sys.stdout) == "console":
        handler.setFormatter(ConsoleFormatter(colour=not os.environ.get("NO_COLOR")))
    else:
        handler.setFormatter(json_formatter(service))
    our_level = logging.getLevelName(level.upper())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(our_level, logging.INFO))
    for package in OUR_PACKAGES:
        logging.getLogger(package).setLevel(our_level)
    for library, library_level in LIBRARY_LOG_LEVELS.items():
        logging.getLogger(library).setLevel(library_level)
