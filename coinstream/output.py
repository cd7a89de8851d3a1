"""How the ``coinstream`` command speaks: tables and lines on stdout, one-line errors on stderr,
and plain JSON for scripts (``--json``: no colour, no table)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from coinstream.control_client import ControlClientError

ERROR_EXIT_STATUS = 1
"""A command that could not be done. Usage errors exit 2, as click's do."""

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the answer as JSON, for scripts (no colour).")
]

console = Console(highlight=False)


def fail(message: str) -> NoReturn:
    """One line on stderr, then a non-zero exit status."""
    print(f"coinstream: {message}", file=sys.stderr)
    raise typer.Exit(ERROR_EXIT_STATUS)


@contextmanager
def errors_as_one_line() -> Iterator[None]:
    """Turn the control client's errors into ``fail``."""
    try:
        yield
    except ControlClientError as error:
        fail(str(error))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))
