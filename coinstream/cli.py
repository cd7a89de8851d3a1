"""The ``coinstream`` typer app: assembly only (each command lives in ``coinstream.commands``)."""

from __future__ import annotations

import typer

from coinstream.commands import backfill, components, looker, status

app = typer.Typer(
    name="coinstream",
    help="Operate the coinstream pipeline: its state, its components, history and links "
    "(docs/cli.md).",
    no_args_is_help=True,
    add_completion=False,
    # A traceback could show local variables, the token among them; errors are one line.
    pretty_exceptions_show_locals=False,
)
app.command(name="status")(status.status)
components.register(app)
app.command(name="backfill")(backfill.backfill)
app.command(name="looker-url")(looker.looker_url)
