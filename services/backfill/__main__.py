"""``python -m services.backfill``: the backfill as a run-once job, with the options of
``coinstream backfill`` (docs/backfill.md)."""

import typer

from coinstream.commands.backfill import backfill

if __name__ == "__main__":
    typer.run(backfill)
