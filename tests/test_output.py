"""Singer output: valid JSON lines, exact money, STATE flushes everything before it, broken pipes."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from tap_commerce_exports.errors import TargetGone, UserError
from tap_commerce_exports.singer.output import FLUSH_AT, SingerOutput


class Target(io.RawIOBase):
    """A binary stream that records what reached it, and how often it was flushed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.flushes = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += bytes(b)
        return len(b)

    def flush(self) -> None:
        self.flushes += 1

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.data.decode().splitlines()]


class GoneTarget(Target):
    def __init__(self, *, on_write=True) -> None:
        super().__init__()
        self.on_write = on_write

    def write(self, b) -> int:
        if self.on_write:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(b)

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_schema_record_and_state_are_each_one_valid_json_line():
    target = Target()
    out = SingerOutput(target)
    out.schema(
        "orders", {"type": "object", "properties": {"number": {"type": "string"}}}, ["number"], ["window_end"]
    )
    write = out.record_writer("orders", "2025-01-01T00:00:00Z")
    write({"number": "1001", "note": 'quote " and \n newline'})
    out.state({"bookmarks": {"orders": {}}})
    schema, record, state = target.lines()
    assert schema == {
        "type": "SCHEMA",
        "stream": "orders",
        "schema": {"type": "object", "properties": {"number": {"type": "string"}}},
        "key_properties": ["number"],
        "bookmark_properties": ["window_end"],
    }
    assert record == {
        "type": "RECORD",
        "stream": "orders",
        "record": {"number": "1001", "note": 'quote " and \n newline'},
        "time_extracted": "2025-01-01T00:00:00Z",
    }
    assert state == {"type": "STATE", "value": {"bookmarks": {"orders": {}}}}
    assert target.data.count(b"\n") == 3


def test_schema_without_bookmark_properties_omits_them():
    target = Target()
    out = SingerOutput(target)
    out.schema("orders", {}, ["number"])
    out.flush()
    assert "bookmark_properties" not in target.lines()[0]


@pytest.mark.parametrize(
    "money, text",
    [
        (Decimal("0.10"), b"0.10"),
        (Decimal("10.50"), b"10.50"),
        (Decimal("-1234567890.99"), b"-1234567890.99"),
        (Decimal("0"), b"0"),
    ],
)
def test_decimal_money_is_an_exact_json_number(money, text):
    target = Target()
    out = SingerOutput(target)
    out.record_writer("orders", "2025-01-01T00:00:00Z")({"total": money})
    out.flush()
    assert b'"total":' + text + b"}" in bytes(target.data)
    assert json.loads(target.data, parse_float=Decimal)["record"]["total"] == money


def test_nothing_written_before_a_state_stays_buffered_after_it():
    target = Target()
    out = SingerOutput(target)
    write = out.record_writer("orders", "2025-01-01T00:00:00Z")
    for i in range(10):
        write({"number": str(i)})
    assert target.data == b""  # small output is buffered...
    out.state({"bookmarks": {}})
    lines = target.lines()  # ...and all of it reaches the target with the STATE
    assert [m["type"] for m in lines] == ["RECORD"] * 10 + ["STATE"]
    assert target.flushes >= 1
    before = bytes(target.data)
    out.flush()
    assert bytes(target.data) == before  # nothing was left behind in the buffer


def test_large_output_is_written_in_chunks_before_any_state():
    target = Target()
    out = SingerOutput(target)
    write = out.record_writer("orders", "2025-01-01T00:00:00Z")
    n = 0
    while not target.data:
        write({"number": str(n), "pad": "x" * 100})
        n += 1
        assert n < 10 * FLUSH_AT
    out.flush()
    assert len(target.lines()) == n


def test_records_of_two_writers_keep_their_streams():
    target = Target()
    out = SingerOutput(target)
    a = out.record_writer("orders", "t")
    b = out.record_writer("customers", "t")
    a({"id": 1})
    b({"id": 2})
    a({"id": 3})
    out.state({})
    assert [(m.get("stream"), m.get("record", {}).get("id")) for m in target.lines()[:3]] == [
        ("orders", 1),
        ("customers", 2),
        ("orders", 3),
    ]


def test_a_broken_pipe_on_write_is_target_gone():
    out = SingerOutput(GoneTarget())
    out.record_writer("orders", "t")({"id": 1})
    with pytest.raises(TargetGone) as info:
        out.state({})
    assert isinstance(info.value, UserError)
    assert "broken pipe" in str(info.value) and "\n" not in str(info.value)


def test_a_broken_pipe_on_flush_is_target_gone():
    out = SingerOutput(GoneTarget(on_write=False))
    with pytest.raises(TargetGone):
        out.state({})


def test_a_broken_pipe_while_writing_a_full_buffer_of_records_is_target_gone():
    out = SingerOutput(GoneTarget())
    write = out.record_writer("orders", "t")
    with pytest.raises(TargetGone):
        for i in range(100_000):
            write({"id": i, "pad": "x" * 100})
