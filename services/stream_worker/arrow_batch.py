"""The micro-batch after its one collect: split in Arrow into each table's rows and the quarantine.

``transforms.BatchRows`` gives every message once, with a struct column per table holding
what that table makes of it; collecting that is the batch's only Spark job. Splitting it here,
on the driver, replaces a Spark job per table (each with its own planning, scheduling and, for
the in-batch dedupe, a shuffle) with a few Arrow kernels over a few hundred rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from services.stream_worker.transforms import COORDINATES
from shared.schemas import QUARANTINE, ColumnType, TableSchema

ARROW_TYPES = {
    ColumnType.STRING: pa.string(),
    ColumnType.INT64: pa.int64(),
    ColumnType.FLOAT64: pa.float64(),
    ColumnType.BOOL: pa.bool_(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
"""The Arrow type of each warehouse column type: what a sink receives and what it appends."""
QUARANTINE_SCHEMA = pa.schema(
    [pa.field(column.name, ARROW_TYPES[column.type]) for column in QUARANTINE.columns]
)
"""The quarantine rows as the sink receives them, from whichever step found the problem."""


@dataclass(frozen=True)
class SplitBatch:
    """One micro-batch, ready for the sink."""

    rows: dict[str, pa.Table]
    """Per table name, its valid rows, in the table's column order, once per merge key."""
    quarantine: pa.Table
    coordinates: pa.Table
    """``topic``, ``partition``, ``offset`` of every message: for the offset commit and for
    finding records lost to retention."""


def table_rows_of(collected: pa.Table, table: TableSchema) -> pa.Table:
    """The messages ``table`` made rows of (those of its topic with a readable envelope): its
    columns, ``quarantine_reason``, ``processing_timestamp`` and the message's coordinates."""
    made = collected.filter(pc.is_valid(collected[table.table]))
    struct = made[table.table].combine_chunks()
    assert isinstance(struct, pa.StructArray)
    beside = ["processing_timestamp", *COORDINATES]
    return pa.Table.from_arrays(
        [*struct.flatten(), *(made[name] for name in beside)],
        [*(field.name for field in struct.type), *beside],
    )


def valid_rows(rows: pa.Table, table: TableSchema) -> pa.Table:
    """Rows with no problem, in the table's column order, once per merge key (the first).

    A record published twice into one batch would otherwise reach the MERGE twice, and a
    MERGE inserts every source row that has no match in the target, copies included.
    """
    valid = rows.filter(pc.is_null(rows["quarantine_reason"])).select(table.column_names)
    if valid.num_rows < 2:
        return valid
    keys = list(table.dedup_columns)
    numbered = valid.select(keys).append_column("row", pa.array(range(valid.num_rows)))
    firsts = numbered.group_by(keys, use_threads=False).aggregate([("row", "min")])["row_min"]
    if len(firsts) == valid.num_rows:
        return valid
    return valid.take(pc.take(firsts, pc.sort_indices(firsts)))


def quarantine_rows(rows: pa.Table) -> pa.Table:
    """Rows with a problem, shaped as the quarantine table stores them."""
    bad = rows.filter(pc.is_valid(rows["quarantine_reason"]))
    return _quarantine_shape(bad, "quarantine_reason")


def unparseable_rows(collected: pa.Table) -> pa.Table:
    """Messages whose envelope could not be read, shaped for the quarantine table."""
    bad = collected.filter(pc.is_valid(collected["parse_problem"]))
    return _quarantine_shape(bad, "parse_problem")


def _quarantine_shape(rows: pa.Table, reason: str) -> pa.Table:
    names = QUARANTINE_SCHEMA.names
    columns = [rows[reason if name == "reason" else name] for name in names]
    return pa.Table.from_arrays(columns, names).cast(QUARANTINE_SCHEMA)


def split_batch(collected: pa.Table, tables: list[TableSchema]) -> SplitBatch:
    """``collected`` (``transforms.BatchRows``, collected) as each table's rows and the
    quarantine."""
    rows: dict[str, pa.Table] = {}
    quarantined = [unparseable_rows(collected)]
    for table in tables:
        made = table_rows_of(collected, table)
        rows[table.table] = valid_rows(made, table)
        quarantined.append(quarantine_rows(made))
    return SplitBatch(
        rows=rows,
        quarantine=pa.concat_tables(quarantined),
        coordinates=collected.select(["topic", "partition", "offset"]),
    )
