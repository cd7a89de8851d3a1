"""CoinCap's ``/assets/{id}/history`` intervals, shared by the simulator that serves history and
the backfill that fetches it.

An interval names both the spacing of the points and their alignment: CoinCap's points fall on
multiples of the interval since the epoch (a d1 point at midnight UTC, an h1 point on the hour).
"""

from __future__ import annotations

from typing import Literal, get_args

HistoryInterval = Literal["m1", "m5", "m15", "m30", "h1", "h2", "h6", "h12", "d1"]

_MINUTE_MS = 60_000

INTERVAL_MS: dict[HistoryInterval, int] = {
    "m1": _MINUTE_MS,
    "m5": 5 * _MINUTE_MS,
    "m15": 15 * _MINUTE_MS,
    "m30": 30 * _MINUTE_MS,
    "h1": 60 * _MINUTE_MS,
    "h2": 120 * _MINUTE_MS,
    "h6": 360 * _MINUTE_MS,
    "h12": 720 * _MINUTE_MS,
    "d1": 1440 * _MINUTE_MS,
}
"""Milliseconds between two points of each interval."""

HISTORY_INTERVALS: tuple[HistoryInterval, ...] = get_args(HistoryInterval)


def point_times(interval_ms: int, start_ms: int, end_ms: int) -> range:
    """The aligned times of the points from ``start_ms`` to ``end_ms``, both included."""
    first = -(-start_ms // interval_ms) * interval_ms
    return range(first, end_ms + 1, interval_ms)


def interval_milliseconds(name: str) -> int | None:
    """Milliseconds between points of the interval called ``name``; None when there is none."""
    return next((ms for interval, ms in INTERVAL_MS.items() if interval == name), None)
