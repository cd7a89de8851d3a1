"""What a backfill will fetch and what it will cost, worked out before anything is spent.

A range is cut into windows of at most ``backfill_max_points_per_window`` points, one request
each; windows the ledger says are done are left out, so a rerun or a resumed run plans only
what is missing. Work is done in point indices (a point's time divided by the interval), so a
window never holds a point twice and two windows never share one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.coincap.history import INTERVAL_MS, HistoryInterval


@dataclass(frozen=True, order=True)
class Window:
    """One request's worth of one asset's history: its points from ``start_ms`` to
    ``end_ms``, both included."""

    asset_id: str
    interval: HistoryInterval
    start_ms: int
    end_ms: int

    @property
    def points(self) -> int:
        step = INTERVAL_MS[self.interval]
        return (self.end_ms - self.start_ms) // step + 1


@dataclass(frozen=True)
class CreditEstimate:
    """What the plan costs, and how much of the month's CoinCap budget that is."""

    requests: int
    credits: float
    monthly_credits: int

    @property
    def budget_share(self) -> float:
        """The share of the monthly credits, 0.0 to 1.0 (or more, for a plan that overruns)."""
        return self.credits / self.monthly_credits


@dataclass(frozen=True)
class BackfillPlan:
    """The windows still to fetch, asset by asset, and what fetching them costs."""

    asset_ids: tuple[str, ...]
    interval: HistoryInterval
    start_ms: int
    end_ms: int
    windows: tuple[Window, ...]
    skipped_windows: int
    """Finished windows in the ledger within the range: fetched before, not fetched again."""
    listing_requests: int
    """Requests to learn the top assets by rank (0 with ids given or a recent ranking kept)."""
    estimate: CreditEstimate

    @property
    def points(self) -> int:
        return sum(window.points for window in self.windows)


def last_complete_point_ms(interval: HistoryInterval, now_ms: int) -> int:
    """The latest point whose interval is over by ``now_ms``: later ones may still change."""
    step = INTERVAL_MS[interval]
    return (now_ms // step - 1) * step


def _missing_index_ranges(
    first: int, last: int, done: Iterable[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The index ranges in ``first..last`` that no ``done`` range covers (all inclusive)."""
    gaps = []
    cursor = first
    for done_first, done_last in sorted(done):
        if done_last < cursor:
            continue
        if done_first > last:
            break
        if done_first > cursor:
            gaps.append((cursor, done_first - 1))
        cursor = max(cursor, done_last + 1)
    if cursor <= last:
        gaps.append((cursor, last))
    return gaps


def plan_windows(
    asset_id: str,
    interval: HistoryInterval,
    start_ms: int,
    end_ms: int,
    max_points_per_window: int,
    done: Iterable[tuple[int, int]] = (),
) -> list[Window]:
    """The windows of ``asset_id``'s points from ``start_ms`` to ``end_ms`` that ``done``
    (finished windows, as ``(start_ms, end_ms)``) does not cover, each of at most
    ``max_points_per_window`` points."""
    if max_points_per_window < 1:
        raise ValueError(f"max_points_per_window must be 1 or more, got {max_points_per_window}")
    step = INTERVAL_MS[interval]
    first, last = -(-start_ms // step), end_ms // step
    done_indices = [(-(-low // step), high // step) for low, high in done]
    windows = []
    for gap_first, gap_last in _missing_index_ranges(first, last, done_indices):
        for window_first in range(gap_first, gap_last + 1, max_points_per_window):
            window_last = min(window_first + max_points_per_window - 1, gap_last)
            windows.append(Window(asset_id, interval, window_first * step, window_last * step))
    return windows


def estimate_credits(
    requests: int, credits_per_call: float, monthly_credits: int
) -> CreditEstimate:
    """One request is one call: CoinCap bills a history request as it bills a listing."""
    return CreditEstimate(requests, requests * credits_per_call, monthly_credits)


def build_plan(
    asset_ids: Sequence[str],
    interval: HistoryInterval,
    start_ms: int,
    end_ms: int,
    *,
    max_points_per_window: int,
    done: Mapping[tuple[str, str], Sequence[tuple[int, int]]],
    listing_requests: int,
    credits_per_call: float,
    monthly_credits: int,
) -> BackfillPlan:
    """Every asset's missing windows, and the credits they and the listing cost."""
    windows: list[Window] = []
    skipped = 0
    for asset_id in asset_ids:
        finished = done.get((asset_id, interval), [])
        windows += plan_windows(
            asset_id, interval, start_ms, end_ms, max_points_per_window, finished
        )
        skipped += sum(1 for low, high in finished if low <= end_ms and high >= start_ms)
    requests = listing_requests + len(windows)
    return BackfillPlan(
        asset_ids=tuple(asset_ids),
        interval=interval,
        start_ms=start_ms,
        end_ms=end_ms,
        windows=tuple(windows),
        skipped_windows=skipped,
        listing_requests=listing_requests,
        estimate=estimate_credits(requests, credits_per_call, monthly_credits),
    )
