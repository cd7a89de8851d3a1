"""``coinstream backfill``: CoinCap's asset history into the warehouse, with a credit estimate
first, a progress bar while it runs and a summary at the end (docs/backfill.md).

The work is ``services.backfill``'s; this is its face on the command line.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from coinstream.output import ERROR_EXIT_STATUS, JsonOption, console, fail, print_json
from services.backfill import (
    BackfillAlreadyRunning,
    BackfillPlan,
    BackfillProgress,
    BackfillRequest,
    BackfillRequestError,
    BackfillSummary,
)
from services.backfill import backfill as run_backfill
from shared.coincap.history import HISTORY_INTERVALS, HistoryInterval
from shared.settings import Settings, load_settings_or_exit

DEFAULT_TOP = 10
DEFAULT_DAYS = 30
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def describe_plan(plan: BackfillPlan, settings: Settings) -> str:
    """What the run will fetch and cost, in a sentence or two."""
    start = datetime.fromtimestamp(plan.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(plan.end_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    listed = plan.asset_ids[0].startswith("#")
    assets = (
        f"the top {len(plan.asset_ids)} assets by rank (listed once you agree)"
        if listed
        else f"{len(plan.asset_ids)} asset(s) ({', '.join(plan.asset_ids[:5])}"
        + (", ...)" if len(plan.asset_ids) > 5 else ")")
    )
    estimate = plan.estimate
    cost = (
        f"{estimate.credits:g} credit(s), {estimate.budget_share:.2%} of the "
        f"{estimate.monthly_credits:,} monthly credits (COINSTREAM_COINCAP_MONTHLY_CREDITS)"
    )
    if settings.uses_coincap_simulator:
        cost += "; this is the simulator, which charges nothing"
    lines = [
        f"{plan.interval} history of {assets}, {start} to {end} UTC: "
        f"{len(plan.windows)} request(s) of history, about {plan.points:,} points"
        + (f", {plan.listing_requests} to list the assets" if plan.listing_requests else "")
        + ".",
        f"Cost: {cost}.",
    ]
    if plan.skipped_windows:
        lines.append(f"{plan.skipped_windows} window(s) fetched before are skipped.")
    return "\n".join(lines)


def summary_json(summary: BackfillSummary) -> dict[str, Any]:
    plan = summary.plan
    return {
        "outcome": summary.outcome,
        "stopped_by": summary.stopped_by,
        "interval": plan.interval,
        "start_ms": plan.start_ms,
        "end_ms": plan.end_ms,
        "assets": list(plan.asset_ids),
        "windows_planned": len(plan.windows),
        "windows_skipped": plan.skipped_windows,
        "windows_fetched": summary.windows_fetched,
        "records": summary.records,
        "invalid_records": summary.invalid_records,
        "credits_estimated": plan.estimate.credits,
        "credits_spent": summary.credits_spent,
        "budget_share_estimated": plan.estimate.budget_share,
        "seconds": round(summary.seconds, 3),
    }


def _run(
    request: BackfillRequest, settings: Settings, assume_yes: bool, json: bool
) -> BackfillSummary:
    prompt_console = Console(stderr=True, highlight=False) if json else console

    def confirm(plan: BackfillPlan) -> bool:
        prompt_console.print(describe_plan(plan, settings))
        if assume_yes:
            return True
        return typer.confirm("Go on?", default=False, err=json)

    # The bar appears with the first finished window, after the question, not over it.
    progress = Progress(
        TextColumn("backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("windows · {task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=json,
    )
    task = progress.add_task("backfill", total=None, detail="")

    def advance(step: BackfillProgress) -> None:
        detail = (
            f"assets {step.assets_done}/{step.assets_total} · records {step.records:,} · "
            f"credits {step.credits:g}"
        )
        if not progress.live.is_started:
            progress.start()
        progress.update(task, total=step.windows_total, completed=step.windows_done, detail=detail)

    try:
        return asyncio.run(run_backfill(request, settings, confirm, advance))
    finally:
        if progress.live.is_started:
            progress.stop()


def _interval(name: str) -> HistoryInterval:
    """The interval called ``name``; a usage error (exit status 2) for any other name."""
    for interval in HISTORY_INTERVALS:
        if interval == name:
            return interval
    raise typer.BadParameter(f"{name!r} is not one of {', '.join(HISTORY_INTERVALS)}")


def backfill(
    top: Annotated[
        int | None,
        typer.Option(
            "--top", min=1, help=f"The top N assets by rank (default {DEFAULT_TOP}, without --ids)."
        ),
    ] = None,
    ids: Annotated[
        str | None, typer.Option("--ids", help="Asset ids, comma separated: bitcoin,ethereum.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=DATE_FORMATS, help=f"First day, UTC (default: {DEFAULT_DAYS} days before end)."
        ),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(formats=DATE_FORMATS, help="Last moment, UTC (default: now)."),
    ] = None,
    interval: Annotated[
        str,
        typer.Option(
            callback=_interval,
            help=f"Spacing of the points: {', '.join(HISTORY_INTERVALS)}.",
        ),
    ] = "h1",
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Spend the credits without asking.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Backfill asset history from CoinCap into the warehouse, once (resumable)."""
    settings = load_settings_or_exit()
    if top is not None and ids:
        fail("give --top or --ids, not both")
    chosen_ids = tuple(part.strip() for part in (ids or "").split(",") if part.strip())
    end_at = _utc(end) or datetime.now(UTC)
    start_at = _utc(start) or end_at - timedelta(days=DEFAULT_DAYS)
    request = BackfillRequest(
        start=start_at,
        end=end_at,
        interval=_interval(interval),
        top=None if chosen_ids else (top or DEFAULT_TOP),
        ids=chosen_ids,
    )
    try:
        summary = _run(request, settings, yes, json)
    except (BackfillRequestError, BackfillAlreadyRunning) as error:
        fail(str(error))
    except (KeyboardInterrupt, click.exceptions.Abort):
        fail(
            "backfill interrupted; finished windows are kept in "
            f"{settings.state_dir / 'backfill'}: run the same command again to go on"
        )
    report(summary, json)


def report(summary: BackfillSummary, json: bool) -> None:
    """The summary, then the exit status: non-zero when the run stopped before the end."""
    if json:
        print_json(summary_json(summary))
    elif summary.outcome == "nothing-to-do":
        console.print("Nothing to fetch: every window of that range is done already.")
    elif summary.outcome == "cancelled":
        console.print("Cancelled: nothing was spent.")
    else:
        console.print(
            f"{summary.windows_fetched} window(s), {summary.records:,} records, "
            f"{summary.credits_spent:g} credit(s) in {summary.seconds:.1f} s; the stream worker "
            "merges them into asset_history."
        )
    if summary.outcome == "stopped":
        if json:
            raise typer.Exit(ERROR_EXIT_STATUS)
        print(
            f"coinstream: backfill stopped: {summary.stopped_by}; finished windows are kept: "
            "run the same command again to go on",
            file=sys.stderr,
        )
        raise typer.Exit(ERROR_EXIT_STATUS)
