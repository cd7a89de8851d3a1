"""``coinstream status``: every component's desired and observed state, with the consumer lag
and table freshness of the data it handles, in one table.

An ingestor's row shows the lag of its topic and the freshness of its table; the stream
worker's row shows the total lag and the staler of the two tables. The four reads go to the
control service at once; a read that fails (Kafka down, say) shows as unknown, and only a
control service that cannot list the components makes the command fail.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from coinstream.control_client import ControlClient, ControlClientError
from coinstream.output import JsonOption, console, errors_as_one_line, print_json
from shared.schemas import ASSETS, EXCHANGES
from shared.settings import Settings, load_settings_or_exit

LAG_LATE_SECONDS = 300.0
"""Unprocessed records older than this show red: the worker is not keeping up, or is down."""

STATE_STYLES = {
    "RUNNING": "green",
    "PAUSED": "yellow",
    "STOPPED": "yellow",
    "STARTING": "cyan",
    "FAILED": "bold red",
    "UNREACHABLE": "bold red",
}


@dataclass(frozen=True)
class PipelineStatus:
    """What the control service answered; None where a read failed, with the reason."""

    control_url: str
    readiness: dict[str, Any]
    components: list[dict[str, Any]]
    lag: dict[str, Any] | None
    lag_problem: str | None
    freshness: dict[str, Any] | None
    freshness_problem: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "control_url": self.control_url,
            "ready": self.readiness.get("status") == "ready",
            "readiness": self.readiness,
            "components": self.components,
            "lag": self.lag,
            "lag_problem": self.lag_problem,
            "freshness": self.freshness,
            "freshness_problem": self.freshness_problem,
        }


def read_status(settings: Settings) -> PipelineStatus:
    """The four reads, concurrently; ControlClientError when the components cannot be listed."""
    with ControlClient(settings) as control, ThreadPoolExecutor(max_workers=4) as pool:
        readiness = pool.submit(control.get, "/readyz", (200, 503))
        components = pool.submit(control.get, "/components")
        lag = pool.submit(control.get, "/lag")
        freshness = pool.submit(control.get, "/freshness")
        lag_answer, lag_problem = _optional(lag.result)
        freshness_answer, freshness_problem = _optional(freshness.result)
        return PipelineStatus(
            control_url=control.base_url,
            readiness=readiness.result(),
            components=components.result()["components"],
            lag=lag_answer,
            lag_problem=lag_problem,
            freshness=freshness_answer,
            freshness_problem=freshness_problem,
        )


def _optional(result: Any) -> tuple[dict[str, Any] | None, str | None]:
    try:
        answer: dict[str, Any] = result()
    except ControlClientError as error:
        return None, str(error)
    return answer, None


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def lag_cell(topics: list[dict[str, Any]] | None) -> Text:
    """Records waiting for the worker, and the age of the oldest, over ``topics``."""
    if not topics:
        return Text("unknown", style="dim")
    if not any(topic["exists"] for topic in topics):
        return Text("no topic yet", style="dim")
    records = sum(int(topic["lag_records"]) for topic in topics)
    seconds = [topic["lag_seconds"] for topic in topics if topic["lag_seconds"] is not None]
    oldest = max(seconds) if seconds else None
    if records == 0:
        return Text("0", style="green")
    style = "red" if oldest is not None and oldest > LAG_LATE_SECONDS else "yellow"
    return Text(f"{records} ({age(oldest)} behind)", style=style)


def freshness_cell(tables: list[dict[str, Any]] | None) -> Text:
    """How old the newest row is, of the stalest of ``tables``."""
    if not tables:
        return Text("unknown", style="dim")
    if any(table["seconds_since_newest"] is None for table in tables):
        return Text("no rows yet", style="yellow")
    stalest = max(float(table["seconds_since_newest"]) for table in tables)
    return Text(f"{age(stalest)} ago")


def observed_cell(component: dict[str, Any]) -> Text:
    observed = str(component["observed_state"])
    style = STATE_STYLES.get(observed, "")
    if not component["in_sync"] and observed not in ("STARTING", "FAILED", "UNREACHABLE"):
        style = "bold red"
    return Text(observed, style=style)


def status_table(settings: Settings, status: PipelineStatus) -> Table:
    """One row per component, coloured by state, lag and freshness."""
    topics = {topic["topic"]: topic for topic in (status.lag or {}).get("topics", [])}
    tables = {table["table"]: table for table in (status.freshness or {}).get("tables", [])}
    handles = {
        "asset-ingestor": ([settings.topic_assets], [ASSETS.table]),
        "exchange-ingestor": ([settings.topic_exchanges], [EXCHANGES.table]),
        "stream-worker": (list(topics), [ASSETS.table, EXCHANGES.table]),
    }
    now = datetime.now(UTC)
    ready = status.readiness.get("status") == "ready"
    verdict = "[green]ready[/green]" if ready else "[bold red]unready[/bold red]"
    table = Table(title=f"coinstream at {status.control_url}: {verdict}", title_justify="left")
    for header in ("component", "desired", "observed", "last success", "lag", "freshness"):
        table.add_column(header)
    table.add_column("last error", overflow="fold", max_width=60)
    for component in status.components:
        name = component["name"]
        topic_names, table_names = handles.get(name, ([], []))
        last_success = component["last_success_at"]
        since_success = (
            (now - datetime.fromisoformat(last_success)).total_seconds() if last_success else None
        )
        table.add_row(
            name,
            Text(
                str(component["desired_state"]),
                style=STATE_STYLES.get(component["desired_state"], ""),
            ),
            observed_cell(component),
            f"{age(since_success)} ago" if since_success is not None else "never",
            lag_cell([topics[t] for t in topic_names if t in topics]),
            freshness_cell([tables[t] for t in table_names if t in tables]),
            Text(component["last_error"] or "", style="red"),
        )
    if not ready and status.readiness.get("detail"):
        table.caption = f"[red]{status.readiness['detail']}[/red]"
    for problem in (status.lag_problem, status.freshness_problem):
        if problem:
            table.caption = f"{table.caption or ''}\n[yellow]{problem}[/yellow]".strip()
    return table


def status(json: JsonOption = False) -> None:
    """Every component's desired and observed state, lag and freshness, in one table."""
    settings = load_settings_or_exit()
    with errors_as_one_line():
        answered = read_status(settings)
    if json:
        print_json(answered.as_json())
        return
    console.print(status_table(settings, answered))
