"""What every sink is to the worker: a start-up step, and a write that is exactly once."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from shared.schemas import TableSchema


class BatchSink(Protocol):
    """Writes one table's rows of one micro-batch, exactly once however often it is called."""

    def prepare(self) -> None:
        """Do the sink's own start-up work, once, before the worker first starts its query.

        The worker calls it without knowing what it does, so a sink that leaves something
        behind after a crash (the MERGE sink's staging tables) cleans it up here.
        """
        ...

    def write(self, table: TableSchema, rows: pa.Table, run_id: str, batch_id: int) -> int:
        """Write ``rows`` of batch ``batch_id`` (run ``run_id``) to ``table``; return how many
        were sent."""
        ...
