"""The trigger benchmark reads CPU time the way the kernel counts it."""

from __future__ import annotations

import os
import time

from bench.trigger_cost import cpu_seconds


def test_a_process_cpu_time_grows_while_it_computes_and_is_none_once_gone() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.2
    assert cpu_seconds(2**22 + 1) is None  # above the kernel's largest process id
