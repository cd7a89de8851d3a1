"""CoinCap's ``/assets/{id}/history`` intervals, shared by the simulator that serves history and
the backfill that fetches it.

An interval names both the spacing of the points and their alignment: CoinCap's points fall on
multiples of the interval since the epoch (a d1 point at midnight UTC, an h1 point on the hour).
A point's ``time`` is its table's partitioning column, so the backfill checks it against the
column's domain (``point_time_error``) before anything is sent.
"""

from __future__ import annotations

from typing import Literal, get_args

from shared.schemas import ASSET_HISTORY

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


def point_time_error(point: object) -> str | None:
    """None when ``point`` has a ``time`` the ``asset_history`` table can hold (whole epoch
    milliseconds within BigQuery's TIMESTAMP range), else the reason for the dead-letter topic."""
    point_time = point.get("time") if isinstance(point, dict) else None
    if not isinstance(point_time, int) or isinstance(point_time, bool):
        return "history point has no numeric 'time'"
    low, high = ASSET_HISTORY.column("time").timestamp_range_ms
    if not low <= point_time <= high:
        return (
            f"history point 'time' {point_time} is outside BigQuery's TIMESTAMP range "
            f"({low} to {high} epoch milliseconds)"
        )
    return None
