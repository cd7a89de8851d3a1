"""JSON-line logging for every service: one object per line, with the service's name in it."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger (ours, uvicorn's, aiokafka's) to stdout as JSON lines."""
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
    # aiokafka logs every refused connection while a broker is down as an error; our own
    # buffer and metrics report the outage once, clearly.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    # httpx logs every request at INFO; our metrics count them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
