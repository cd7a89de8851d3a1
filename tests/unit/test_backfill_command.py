"""``coinstream backfill``'s own words: the estimate it asks about, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from coinstream.commands.backfill import backfill, describe_plan
from services.backfill.plan import build_plan
from shared.settings import Settings

DAY = 86_400_000
T0 = 1_790_000_000_000 // DAY * DAY


def test_the_estimate_names_the_credits_and_the_share_of_the_month() -> None:
    plan = build_plan(
        ["#1", "#2"],
        "h1",
        T0,
        T0 + 30 * DAY,
        max_points_per_window=2000,
        done={},
        listing_requests=1,
        credits_per_call=1.0,
        monthly_credits=2500,
    )
    text = describe_plan(plan, Settings(_env_file=None))
    assert "the top 2 assets by rank" in text
    assert "Cost: 3 credit(s), 0.12% of the 2,500 monthly credits" in text
    assert "simulator, which charges nothing" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--top", "3", "--ids", "bitcoin"], "coinstream: give --top or --ids, not both\n"),
        (
            ["--ids", "bitcoin", "--start", "2026-02-01", "--end", "2026-01-01"],
            "coinstream: start (2026-02-01T00:00:00+00:00) must be before end "
            "(2026-01-01T00:00:00+00:00)\n",
        ),
    ],
)
def test_a_wrong_request_is_one_line_and_a_non_zero_exit(
    arguments: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COINSTREAM_ENV_FILE", "/dev/null")
    monkeypatch.setenv("COINSTREAM_STATE_DIR", str(tmp_path))
    app = typer.Typer()
    app.command()(backfill)
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1
    assert result.stderr == message
    assert not (tmp_path / "backfill" / "windows.jsonl").exists()
