"""Resident memory of a process and everything below it (a worker's Spark JVM included)."""

from __future__ import annotations

from pathlib import Path

from tests.harness.pipeline import descendants


def tree_rss_mib(pid: int) -> float | None:
    """VmRSS of ``pid`` and its descendants, in MiB; None once ``pid`` is gone."""
    total_kib = 0
    for member in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            if member == pid:
                return None
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def grows_without_bound(samples: list[float]) -> bool:
    """True when the last third of a run's samples peaks well above its middle third.

    The first third is warm-up (a JVM's heap, caches filling). A process that has settled
    peaks about as high later as it did in the middle; a leak keeps climbing. The margin
    (a fifth, plus 64 MiB) absorbs garbage-collection sawtooth.
    """
    if len(samples) < 6:
        return False
    third = len(samples) // 3
    middle_peak = max(samples[third : 2 * third])
    last_peak = max(samples[2 * third :])
    return last_peak > middle_peak * 1.2 + 64
