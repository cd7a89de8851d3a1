"""Backfill planning: windows that cover a range once, skip what the ledger holds, and cost what
they are estimated to; the ledger that remembers them; and the messages a window's points become."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.backfill import BackfillRequest, BackfillRequestError, Ledger, plan_backfill
from services.backfill.job import history_messages
from services.backfill.ledger import BackfillAlreadyRunning
from services.backfill.plan import Window, estimate_credits, last_complete_point_ms, plan_windows
from shared.coincap.history import INTERVAL_MS, point_times
from shared.envelope import fits_in_kafka
from shared.settings import Settings

HOUR = INTERVAL_MS["h1"]
DAY = INTERVAL_MS["d1"]
T0 = 1_790_000_000_000 // DAY * DAY  # a midnight


def covered_points(windows: list[Window]) -> list[int]:
    return [
        time
        for window in windows
        for time in point_times(INTERVAL_MS[window.interval], window.start_ms, window.end_ms)
    ]


def test_windows_cover_every_point_once_within_the_window_limit() -> None:
    start, end = T0 + 1, T0 + 30 * DAY  # an unaligned start: its first point is the next hour
    windows = plan_windows("bitcoin", "h1", start, end, max_points_per_window=100)
    assert covered_points(windows) == list(point_times(HOUR, start, end))
    assert all(window.points <= 100 for window in windows)
    assert len(windows) == -(-(30 * 24) // 100)  # 720 points: 7 full windows and a short one


def test_windows_skip_what_is_done_and_fill_only_the_gaps() -> None:
    start, end = T0, T0 + 10 * DAY
    everything = plan_windows("bitcoin", "h1", start, end, max_points_per_window=48)
    done = [(w.start_ms, w.end_ms) for w in everything[:2]] + [
        (everything[4].start_ms, everything[4].end_ms)
    ]
    missing = plan_windows("bitcoin", "h1", start, end, 48, done)
    assert sorted(covered_points(missing) + covered_points([everything[i] for i in (0, 1, 4)])) == (
        list(point_times(HOUR, start, end))
    )
    assert plan_windows("bitcoin", "h1", start, end, 48, [(start, end)]) == []


def test_a_range_shorter_than_an_interval_with_no_point_plans_nothing() -> None:
    assert plan_windows("bitcoin", "d1", T0 + 1, T0 + HOUR, 10) == []


def test_the_range_ends_at_the_last_complete_point() -> None:
    now = T0 + 5 * HOUR + 123
    assert last_complete_point_ms("h1", now) == T0 + 4 * HOUR  # 05:00's hour is not over


def test_the_estimate_is_requests_times_credits_and_a_share_of_the_month() -> None:
    estimate = estimate_credits(requests=11, credits_per_call=2.0, monthly_credits=2500)
    assert estimate.credits == 22.0
    assert estimate.budget_share == pytest.approx(22 / 2500)


def settings_in(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(state_dir=tmp_path, **overrides)  # type: ignore[arg-type]


def request(**overrides: object) -> BackfillRequest:
    fields: dict[str, object] = {
        "start": datetime.fromtimestamp(T0 / 1000, UTC),
        "end": datetime.fromtimestamp((T0 + 30 * DAY) / 1000, UTC),
        "interval": "h1",
        "ids": ("bitcoin", "ethereum"),
    }
    return BackfillRequest(**(fields | overrides))  # type: ignore[arg-type]


def test_a_plan_of_ids_costs_one_credit_a_window_and_less_after_a_run(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, backfill_max_points_per_window=500, coincap_credits_per_call=1)
    now = T0 + 60 * DAY
    with Ledger(tmp_path / "backfill") as ledger:
        plan = plan_backfill(request(), settings, ledger, now_ms=now)
        assert plan.listing_requests == 0
        assert len(plan.windows) == 2 * 2  # 721 points each: 500 + 221
        assert plan.estimate.credits == 4
        assert plan.estimate.budget_share == pytest.approx(4 / settings.coincap_monthly_credits)
        for window in plan.windows[:3]:
            ledger.record(window, window.points)
        again = plan_backfill(request(), settings, ledger, now_ms=now)
    assert again.windows == plan.windows[3:]
    assert again.skipped_windows == 3
    assert again.estimate.credits == 1


def test_a_top_n_plan_counts_the_listing_until_a_ranking_is_kept(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    top = request(ids=(), top=3)
    with Ledger(tmp_path / "backfill") as ledger:
        first = plan_backfill(top, settings, ledger, now_ms=T0 + 60 * DAY)
        assert first.listing_requests == 1
        assert first.asset_ids == ("#1", "#2", "#3")
        assert first.estimate.requests == 1 + 3
        ledger.keep_ranking(["bitcoin", "ethereum", "tether", "solana"])
        kept = plan_backfill(top, settings, ledger, now_ms=T0 + 60 * DAY)
    assert kept.listing_requests == 0
    assert kept.asset_ids == ("bitcoin", "ethereum", "tether")


def test_a_torn_ledger_line_only_costs_its_window_again(tmp_path: Path) -> None:
    window = Window("bitcoin", "h1", T0, T0 + 10 * HOUR)
    with Ledger(tmp_path) as ledger:
        ledger.record(window, 11)
        with ledger.windows_path.open("a") as file:
            file.write('{"asset": "bitcoin", "interval": "h1", "sta')
        assert ledger.finished() == {("bitcoin", "h1"): [(T0, T0 + 10 * HOUR)]}


def test_two_runs_cannot_hold_the_ledger_at_once(tmp_path: Path) -> None:
    with Ledger(tmp_path), pytest.raises(BackfillAlreadyRunning, match="another backfill"):
        Ledger(tmp_path).__enter__()


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"ids": (), "top": None}, "either a number of top assets or asset ids"),
        ({"top": 2}, "either a number of top assets or asset ids"),
        ({"end": datetime.fromtimestamp(T0 / 1000, UTC)}, "must be before end"),
    ],
)
def test_a_wrong_request_is_refused_before_anything_is_spent(
    tmp_path: Path, overrides: dict[str, object], problem: str
) -> None:
    with Ledger(tmp_path) as ledger, pytest.raises(BackfillRequestError, match=problem):
        plan_backfill(request(**overrides), settings_in(tmp_path), ledger)


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (
            {"priceUsd": "1.0", "time": 9_999_999_999_999_999},
            "history point 'time' 9999999999999999 is outside BigQuery's TIMESTAMP range "
            "(-62135596800000 to 253402300799999 epoch milliseconds)",
        ),
        ({"priceUsd": "1.0", "time": "1790000000000"}, "history point has no numeric 'time'"),
        ({"priceUsd": "1.0", "time": True}, "history point has no numeric 'time'"),
        (
            {"priceUsd": "1.0", "time": T0, "date": "\ud800"},
            "not valid Unicode: a lone surrogate in date",
        ),
        (
            {"priceUsd": "1.0", "time": T0, "note": "x" * 1_100_000},
            "the record makes a 1100",
        ),
    ],
    ids=["time-9999999999999999", "time-as-text", "time-true", "lone-surrogate", "over-1-MiB"],
)
def test_a_history_point_the_table_cannot_hold_is_dead_lettered_beside_the_rest(
    point: dict[str, object], reason: str
) -> None:
    settings = Settings(_env_file=None)
    window = Window("bitcoin", "h1", T0, T0 + HOUR)
    sound = {"priceUsd": "2.0", "circulatingSupply": "19000000", "time": T0 + HOUR}
    messages, invalid = history_messages(settings, window, [point, sound], T0 + DAY)

    assert invalid == 1
    dead, kept = messages
    assert (dead.topic, kept.topic) == (settings.topic_deadletter, settings.topic_history)
    assert json.loads(dead.value)["reason"].startswith(reason)
    assert fits_in_kafka(dead.key, dead.value)
    record = json.loads(kept.value)
    assert record["source_timestamp"] == T0 + HOUR
    assert record["record"] == {**sound, "id": "bitcoin", "interval": "h1"}
