"""The BigQuery emulator's own command line, with its logging held to warnings from the start.

bqemulator builds its SQL translator when its modules load, before its ``--log-level`` applies,
and the translator logs a debug line listing every translation rule: one long line at each
start of ``make run``. Configured here first, that line is filtered like the rest; the
emulator's own ``--log-level`` then configures its logging as usual.
"""

from __future__ import annotations

import logging

import structlog


def main() -> None:
    """bqemulator's command line (a click group: it exits with the command's status)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from bqemulator.cli import main as emulator_main

    emulator_main(prog_name="bqemulator")


if __name__ == "__main__":
    main()
