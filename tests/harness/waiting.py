"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

FIRST_PAUSE_SECONDS = 0.1
LONGEST_PAUSE_SECONDS = 0.5


def wait_for(condition: Callable[[], Any], what: str, timeout: float) -> float:
    """Poll ``condition`` until it is truthy; return the seconds it took.

    A refused or timed-out HTTP request counts as "not yet", so a condition can ask a service
    that is still starting. Running out of time fails with an AssertionError naming ``what``.

    The pause between two asks grows from 0.1 s to 0.5 s: a condition is often a warehouse
    query (about 20 ms of the emulator's and the client's CPU), and ten a second through a
    minute's wait took CPU from the processes the test waits on.
    """
    started = time.monotonic()
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout:.0f} s waiting: {what}"
        )
        time.sleep(pause)
        pause = min(pause * 1.5, LONGEST_PAUSE_SECONDS)
