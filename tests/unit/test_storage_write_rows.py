"""What the Storage Write API sink sends and reads without a warehouse: the rows it appends
(the table's columns and the batch marker), the append requests they are cut into, and the
batch names, offset ranges and planning times it reads from a Spark checkpoint's files."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from services.stream_worker.batch_marker import (
    BatchMarker,
    CheckpointBatches,
    CheckpointMissing,
    batch_marker,
    batch_timestamp_of,
    query_id_of,
    range_digest,
)
from services.stream_worker.sinks.storage_write import append_requests, arrow_schema, marked_rows
from shared.schemas import ASSETS, QUARANTINE

OFFSET_LOG_ENTRY = (
    "v1\n"
    '{"batchWatermarkMs":0,"batchTimestampMs":1795000000123,'
    '"conf":{"spark.sql.shuffle.partitions":"2"}}\n'
    '{"coincap.assets.v1":{"0":120}}'
)


def quarantine_rows(count: int) -> pa.Table:
    now = datetime.now(UTC)
    return pa.table(
        {
            "topic": ["t"] * count,
            "partition": pa.array([0] * count, pa.int32()),  # as Spark may hand it
            "offset": list(range(count)),
            "kafka_timestamp": [now] * count,
            "raw_value": ["x" * 50] * count,
            "reason": ["bad"] * count,
            "processing_timestamp": [now] * count,
        }
    )


def test_marked_rows_have_every_stored_column_in_order_typed_and_the_marker() -> None:
    rows = marked_rows(QUARANTINE, quarantine_rows(3), "query:4")
    assert rows.schema == arrow_schema(QUARANTINE)
    assert rows.column_names == [column.name for column in QUARANTINE.stored_columns]
    assert rows["partition"].type == pa.int64()
    assert rows["stream_batch"].to_pylist() == ["query:4"] * 3


def test_append_requests_stay_under_the_size_and_continue_the_offsets() -> None:
    rows = marked_rows(QUARANTINE, quarantine_rows(100), "q:0")
    requests = list(append_requests("stream", rows, max_bytes=2_000))
    assert len(requests) > 1
    offsets = [request.offset for request in requests]
    sizes = [request.arrow_rows.rows.row_count for request in requests]
    assert offsets == [sum(sizes[:n]) for n in range(len(sizes))] and sum(sizes) == 100
    assert all(len(r.arrow_rows.rows.serialized_record_batch) < 4_000 for r in requests)
    assert requests[0].arrow_rows.writer_schema.serialized_schema
    assert not any(r.arrow_rows.writer_schema.serialized_schema for r in requests[1:])
    assert all(request.write_stream == "stream" for request in requests)


def test_a_checkpoint_names_its_batches_and_says_when_it_planned_them() -> None:
    files = {"metadata": '{"id":"5c1d"}\n', "offsets/3": OFFSET_LOG_ENTRY}
    batches = CheckpointBatches(files.get, "/checkpoint")
    assert batches.query_id() == "5c1d" == query_id_of(files["metadata"])
    assert batches.planned_at(3) == datetime(2026, 11, 18, 11, 6, 40, 123000, UTC)
    assert batches.planned_at(3) == batch_timestamp_of(OFFSET_LOG_ENTRY)
    assert batches.planned_at(4) is None
    assert batch_marker("5c1d", 3, "0f1e2d3c4b5a6978") == "5c1d:3:0f1e2d3c4b5a6978"


def test_a_checkpoint_without_a_query_id_says_so() -> None:
    nothing: dict[str, str] = {}
    batches = CheckpointBatches(nothing.get, "/nowhere")
    with pytest.raises(CheckpointMissing, match="the checkpoint /nowhere has no metadata file"):
        batches.query_id()


def test_the_stored_schema_is_the_rows_schema_plus_the_marker() -> None:
    assert [column.name for column in ASSETS.stored_columns] == [
        *ASSETS.column_names,
        "stream_batch",
    ]
    assert "stream_batch" not in [field.name for field in ASSETS.bigquery_schema()]
    assert "stream_batch" in [field.name for field in ASSETS.stored_bigquery_schema()]


def offset_log_entry(offsets: str) -> str:
    return f'v1\n{{"batchWatermarkMs":0,"batchTimestampMs":1795000000123,"conf":{{}}}}\n{offsets}'


def test_a_batch_s_offset_range_comes_from_its_own_and_the_previous_offset_log_entry() -> None:
    files = {
        "metadata": '{"id":"5c1d"}',
        "sources/0/0": '\x00v1\n{"coincap.assets.v1":{"0":0,"1":0}}',
        "offsets/0": offset_log_entry('{"coincap.assets.v1":{"0":40,"1":38}}'),
        "offsets/1": offset_log_entry('{"coincap.assets.v1":{"0":80,"1":75}}'),
    }
    batches = CheckpointBatches(files.get, "/checkpoint")
    assets = "coincap.assets.v1"
    assert batches.offset_range(0) == range_digest(
        {(assets, 0): 0, (assets, 1): 0}, {(assets, 0): 40, (assets, 1): 38}
    )
    assert batches.offset_range(1) == range_digest(
        {(assets, 0): 40, (assets, 1): 38}, {(assets, 0): 80, (assets, 1): 75}
    )
    assert re.fullmatch(r"[0-9a-f]{16}", batches.offset_range(1))


def test_the_range_digest_changes_with_any_offset_and_not_with_the_order() -> None:
    start = {("a", 0): 10, ("a", 1): 20, ("b", 0): 5}
    end = {("a", 0): 15, ("a", 1): 20, ("b", 0): 9}
    digest = range_digest(start, end)
    assert range_digest(dict(reversed(start.items())), dict(reversed(end.items()))) == digest
    for partition in end:
        assert range_digest(start, {**end, partition: end[partition] + 1}) != digest
        assert range_digest({**start, partition: start[partition] - 1}, end) != digest
    assert range_digest(None, end) != digest  # a start Spark no longer keeps: the end alone


def test_a_batch_the_offset_log_does_not_plan_has_no_range() -> None:
    files = {"metadata": '{"id":"5c1d"}'}
    with pytest.raises(CheckpointMissing, match="has no offsets/3, so batch 3 has no offset"):
        CheckpointBatches(files.get, "/checkpoint").offset_range(3)


def test_only_a_marker_with_the_same_range_names_the_same_batch() -> None:
    marker = BatchMarker.parse("5c1d-9a:3:0f1e2d3c4b5a6978")
    assert marker == BatchMarker("5c1d-9a", 3, "0f1e2d3c4b5a6978")
    assert marker.same_batch_as(BatchMarker.parse("5c1d-9a:3:0f1e2d3c4b5a6978"))
    # A restored checkpoint's batch 3 over other offsets is another batch.
    assert not marker.same_batch_as(BatchMarker.parse("5c1d-9a:3:aaaaaaaaaaaaaaaa"))
    assert not marker.same_batch_as(BatchMarker.parse("5c1d-9a:4:0f1e2d3c4b5a6978"))
    assert not marker.same_batch_as(BatchMarker.parse("other:3:0f1e2d3c4b5a6978"))


def test_a_marker_written_before_markers_named_their_range_reads_but_never_matches() -> None:
    legacy = BatchMarker.parse("5c1d-9a:3")
    assert legacy == BatchMarker("5c1d-9a", 3, None)
    assert not legacy.same_batch_as(legacy)
    assert not BatchMarker.parse("5c1d-9a:3:0f1e2d3c4b5a6978").same_batch_as(legacy)
    for broken in ("5c1d", "5c1d:three", "a:1:b:c"):
        with pytest.raises(ValueError, match="is not a batch marker"):
            BatchMarker.parse(broken)
