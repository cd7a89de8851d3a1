"""A batch the worker's own stop interrupts is reported in one line, not a Java traceback.

Stopping the query (Ctrl-C, SIGTERM, a pause, a lost lease) interrupts a micro-batch that began
after the worker last waited for one; Spark then runs it again from the checkpoint on the next
start, where the exactly-once write makes that harmless. The batch function fails on the
interrupt (``ClosedByInterruptException`` from a checkpoint read, say), and py4j logs every
exception raised in a Python callback at ERROR, with a hundred lines of Java and Python stack.
While the worker is stopping that is expected, so ``InterruptedBatchFilter`` drops that record
and the worker logs one line of its own; at any other time the record stays, as the detail of
a real failure.
"""

from __future__ import annotations

import logging
import threading

PY4J_CALLBACK_LOGGER = "py4j.clientserver"
PY4J_CALLBACK_FAILURE = "There was an exception while executing the Python Proxy"
"""How py4j's ``ClientServerConnection._call_proxy`` begins its record of a callback's
exception (the batch function is such a callback)."""


class InterruptedBatchFilter(logging.Filter):
    """Drops py4j's record of a failed batch callback while ``stopping`` is set."""

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__()
        self.stopping = stopping

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            self.stopping.is_set() and record.getMessage().startswith(PY4J_CALLBACK_FAILURE)
        )
