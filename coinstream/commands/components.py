"""``coinstream pause|resume|stop|start|restart COMPONENT``: change what a component should do.

Each command stores a desired state through the control service (which needs its token); the
component acts on it within seconds, and ``coinstream status`` shows it catch up.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from typing import Annotated

import typer

from coinstream.control_client import COMMANDS, ControlClient
from coinstream.output import JsonOption, console, errors_as_one_line, print_json
from shared.control_state import COMPONENTS
from shared.settings import load_settings_or_exit

ComponentArgument = Annotated[
    str, typer.Argument(metavar="COMPONENT", help=f"One of: {', '.join(COMPONENTS)}.")
]
ReasonOption = Annotated[
    str | None,
    typer.Option(
        "--reason", help="Why, kept with the desired state (`coinstream status --json` shows it)."
    ),
]

SUMMARIES = {
    "pause": "Pause a component: no new polls or batches (an ingestor spends no API credits).",
    "resume": "Resume a paused component.",
    "stop": "Stop a component: no work, and its Kafka producer or Spark query released.",
    "start": "Start a stopped component.",
    "restart": "Restart a running component's work once (reconnect, poll or batch at once).",
}


def requested_by() -> str:
    """Who to record as asking: the local user, through this command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "someone"
    return f"{user} (coinstream command)"[:100]


def command_function(command: str) -> Callable[..., None]:
    """The typer command function of ``command``."""

    def run(
        component: ComponentArgument, reason: ReasonOption = None, json: JsonOption = False
    ) -> None:
        settings = load_settings_or_exit()
        with errors_as_one_line(), ControlClient(settings) as control:
            accepted = control.command(component, command, reason, requested_by())
        if json:
            print_json(accepted)
            return
        mark = "[green]✓[/green]" if accepted["changed"] else "[yellow]=[/yellow]"
        console.print(f"{mark} {accepted['message']}", soft_wrap=True)

    run.__name__ = command
    run.__doc__ = SUMMARIES[command]
    return run


def register(app: typer.Typer) -> None:
    for command in COMMANDS:
        app.command(name=command)(command_function(command))
