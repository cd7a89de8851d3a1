"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for(condition: Callable[[], Any], what: str, timeout: float) -> float:
    """Poll ``condition`` until it is truthy; return the seconds it took.

    A refused or timed-out HTTP request counts as "not yet", so a condition can ask a service
    that is still starting. Running out of time fails with an AssertionError naming ``what``.
    """
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout:.0f} s waiting: {what}"
        )
        time.sleep(0.1)
