"""The stream worker's recovery rules on plain values: which checkpoint files are unfinished
writes, how the offset log reads, and which offsets count as lost to retention."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from services.stream_worker.checkpoint import is_unfinished_write, kafka_offsets
from services.stream_worker.data_loss import LostRange, lost_ranges, with_lost_ranges
from services.stream_worker.offsets import next_offsets
from services.stream_worker.worker import first_line

TOPIC = "coincap.assets.v1"


def coordinates(offsets: dict[int, list[int]], topic: str = TOPIC) -> pa.Table:
    rows = [
        {"topic": topic, "partition": partition, "offset": offset}
        for partition, numbers in offsets.items()
        for offset in numbers
    ]
    schema = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema)


def test_only_sparks_temporary_files_are_unfinished_writes() -> None:
    token = uuid.uuid4()
    assert is_unfinished_write(f".0.{token}.tmp")
    assert is_unfinished_write(f"..0.{token}.tmp.crc")
    assert is_unfinished_write(f".metadata.{token}.tmp")
    for committed in ("0", ".0.crc", "metadata", ".metadata.crc", "12", f"0.{token}.tmp"):
        assert not is_unfinished_write(committed), committed
    assert not is_unfinished_write(".0.not-a-uuid.tmp")


def test_offsets_read_from_an_offset_log_entry_and_the_initial_offsets() -> None:
    entry = 'v1\n{"batchWatermarkMs":0,"conf":{}}\n{"a":{"0":12,"2":3},"b":{"1":0}}'
    assert kafka_offsets(entry) == {("a", 0): 12, ("a", 2): 3, ("b", 1): 0}
    assert kafka_offsets('\x00v1\n{"a":{"0":5}}') == {("a", 0): 5}


def test_a_batch_that_holds_every_planned_offset_lost_nothing() -> None:
    seen = coordinates({0: [10, 11, 12], 1: [4]})
    assert lost_ranges({(TOPIC, 0): 10, (TOPIC, 1): 4}, {(TOPIC, 0): 13, (TOPIC, 1): 5}, seen) == []


def test_offsets_deleted_before_the_batch_read_them_are_one_range_each() -> None:
    # Partition 0 planned 120..405, retention left 400..404; partition 1 lost everything.
    seen = coordinates({0: [400, 401, 402, 403, 404]})
    start = {(TOPIC, 0): 120, (TOPIC, 1): 7}
    end = {(TOPIC, 0): 405, (TOPIC, 1): 9}
    assert lost_ranges(start, end, seen) == [
        LostRange(TOPIC, 0, 120, 399),
        LostRange(TOPIC, 1, 7, 8),
    ]
    assert LostRange(TOPIC, 0, 120, 399).count == 280
    assert LostRange(TOPIC, 0, 120, 399).reason == (
        f"offsets 120-399 of {TOPIC}/0 lost to retention before they were read"
    )


def test_a_hole_in_the_middle_and_a_partition_new_since_the_last_batch() -> None:
    seen = coordinates({0: [5, 6, 9], 2: [0, 1]})
    start = {(TOPIC, 0): 5}
    end = {(TOPIC, 0): 10, (TOPIC, 2): 2}
    assert lost_ranges(start, end, seen) == [LostRange(TOPIC, 0, 7, 8)]


def test_lost_ranges_become_quarantine_rows_keyed_by_their_first_offset() -> None:
    quarantined = pa.Table.from_pylist(
        [],
        schema=pa.schema(
            [
                pa.field("topic", pa.string(), nullable=False),
                pa.field("partition", pa.int32(), nullable=False),
                pa.field("offset", pa.int64(), nullable=False),
                ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
                ("raw_value", pa.string()),
                ("reason", pa.string()),
                ("processing_timestamp", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
    rows = with_lost_ranges(quarantined, [LostRange(TOPIC, 1, 7, 8)]).to_pylist()
    assert len(rows) == 1
    assert rows[0]["offset"] == 7 and rows[0]["partition"] == 1 and rows[0]["topic"] == TOPIC
    assert rows[0]["reason"] == f"offsets 7-8 of {TOPIC}/1 lost to retention before they were read"
    assert rows[0]["processing_timestamp"] <= datetime.now(UTC)
    assert with_lost_ranges(quarantined, []) is quarantined


def test_the_offsets_to_commit_follow_the_last_one_read() -> None:
    assert next_offsets(coordinates({0: [3, 4], 1: [9]})) == {(TOPIC, 0): 5, (TOPIC, 1): 10}
    assert next_offsets(coordinates({})) == {}


def test_an_error_is_one_line_and_a_plain_one_keeps_its_text() -> None:
    assert first_line(ValueError("bad value\nmore detail")) == "bad value"
    assert first_line(ValueError("")) == "ValueError"


def test_a_commit_while_the_broker_is_down_leaves_no_dead_consumer_behind() -> None:
    """A consumer whose start failed can never commit: keeping it made every later commit fail
    with the broker back, and the worker loop on one batch for good."""
    import socket

    from services.stream_worker.offsets import OffsetCommitter
    from shared.settings import Settings

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    committer = OffsetCommitter(
        Settings(_env_file=None, kafka_bootstrap_servers=f"127.0.0.1:{port}")
    )
    try:
        with pytest.raises(Exception, match=r"bootstrap|Connect"):
            committer.commit({("coincap.assets", 0): 1})
        assert committer._consumer is None
    finally:
        committer.close()
