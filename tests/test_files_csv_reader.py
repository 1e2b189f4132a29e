"""CsvFileReader: a Next Commerce export CSV, streamed into typed records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tap_commerce_exports.errors import InvalidFile, InvalidRecord, MissingKeyColumn
from tap_commerce_exports.files import CsvFileReader, WindowFilter

SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "id": {"type": "integer"},
        "order_number": {"type": ["string", "null"]},
        "total_incl_tax": {"type": ["number", "null"]},
        "is_test": {"type": ["boolean", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
        "note": {"type": ["string", "null"]},
    },
}


def write(tmp_path: Path, content: str | bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def collect(errors: list[InvalidRecord]):  # noqa: ANN201 - small test helper
    return errors.append


def raise_it(error: InvalidRecord) -> None:
    raise error


def reader(
    path: Path,
    *,
    on_invalid=raise_it,  # noqa: ANN001
    window: WindowFilter | None = None,
    primary_keys: Sequence[str] = ("id",),
    key_columns: dict[str, tuple[str, ...]] | None = None,
) -> CsvFileReader:
    return CsvFileReader(
        path,
        SCHEMA,
        stream="orders",
        file_label="orders-42.csv",
        on_invalid=on_invalid,
        window=window,
        primary_keys=primary_keys,
        key_columns=key_columns,
    )


def read(path: Path, **kwargs) -> list[dict]:  # noqa: ANN003
    with reader(path, **kwargs) as r:
        return list(r)


# -- records ------------------------------------------------------------------------


def test_title_case_headers_are_read_as_snake_case_properties(tmp_path: Path) -> None:
    path = write(tmp_path, "ID,Order Number,Total Incl Tax\n1,A-1,9.99\n")
    assert read(path) == [{"id": 1, "order_number": "A-1", "total_incl_tax": Decimal("9.99")}]


def test_cells_are_typed_by_the_schema(tmp_path: Path) -> None:
    path = write(
        tmp_path, "id,total_incl_tax,is_test,created_at,note\n7,0.10,TRUE,2024-01-01T02:00:00+02:00,hi\n"
    )
    [record] = read(path)
    assert record == {
        "id": 7,
        "total_incl_tax": Decimal("0.10"),
        "is_test": True,
        "created_at": "2024-01-01T02:00:00+02:00",
        "note": "hi",
    }


def test_money_sums_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, "id,total_incl_tax\n1,0.10\n2,0.20\n")
    assert sum(r["total_incl_tax"] for r in read(path)) == Decimal("0.30")


def test_mixed_offsets_keep_their_spelling_and_name_the_same_instant(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id,created_at\n1,2024-05-01T12:00:00+02:00\n2,2024-05-01 10:00:00Z\n3,2024-05-01T06:00:00-04:00\n",
    )
    records = read(path)
    assert records[0]["created_at"] == "2024-05-01T12:00:00+02:00"
    assert {datetime.fromisoformat(r["created_at"]) for r in records} == {
        datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    }


def test_empty_cells_are_null(tmp_path: Path) -> None:
    path = write(tmp_path, "id,order_number,total_incl_tax,note\n1,,,\n")
    assert read(path) == [{"id": 1, "order_number": None, "total_incl_tax": None, "note": None}]


def test_unknown_columns_are_kept_as_strings_and_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "id,Gift Message,Loyalty Tier\n1,Happy 42nd,7\n")
    with reader(path) as r:
        assert r.unknown_columns == ["gift_message", "loyalty_tier"]
        assert list(r) == [{"id": 1, "gift_message": "Happy 42nd", "loyalty_tier": "7"}]


def test_columns_expose_the_normalized_header(tmp_path: Path) -> None:
    path = write(tmp_path, "ID,Order #,ID\n1,x,2\n")
    with reader(path) as r:
        assert r.columns == ["id", "order", "id_2"]


# -- file encodings and CSV syntax --------------------------------------------------


def test_a_utf8_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeffid,note\n1,x\n")
    assert read(path) == [{"id": 1, "note": "x"}]


def test_a_byte_order_mark_before_a_quoted_header_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, '\ufeff"id","note"\n1,x\n')
    assert read(path) == [{"id": 1, "note": "x"}]


def test_crlf_and_lf_line_endings_read_the_same(tmp_path: Path) -> None:
    crlf = write(tmp_path, "id,note\r\n1,a\r\n2,b\r\n", "crlf.csv")
    lf = write(tmp_path, "id,note\n1,a\n2,b\n", "lf.csv")
    assert read(crlf) == read(lf) == [{"id": 1, "note": "a"}, {"id": 2, "note": "b"}]


def test_quoted_cells_keep_commas_newlines_and_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,note\r\n1,"a, b\r\nc ""d"""\r\n')
    assert read(path) == [{"id": 1, "note": 'a, b\r\nc "d"'}]


def test_unicode_text_is_read_as_is(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n1,Ünïcødé ✓ 日本 🎉\n")
    assert read(path)[0]["note"] == "Ünïcødé ✓ 日本 🎉"


def test_a_file_without_a_final_newline_still_yields_its_last_row(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n1,a")
    assert read(path) == [{"id": 1, "note": "a"}]


def test_blank_lines_are_not_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n\n1,a\n\n")
    with reader(path) as r:
        assert list(r) == [{"id": 1, "note": "a"}]
    assert r.rows_read == 1


# -- file-level errors ----------------------------------------------------------------


def test_an_empty_file_has_no_header_and_is_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(InvalidFile, match=r"orders-42\.csv.*no CSV header"):
        reader(path)


def test_a_header_only_file_yields_no_records(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\r\n")
    with reader(path) as r:
        assert list(r) == []
        assert r.columns == ["id", "note"]
    assert r.rows_read == 0


def test_invalid_utf8_is_an_invalid_file_naming_the_byte_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,note\n1,ok\n2,caf\xe9\n")
    with pytest.raises(InvalidFile, match=r"orders-42\.csv: not valid UTF-8 at byte offset 18 \(line 3\)"):
        reader(path)


def test_a_truncated_multibyte_character_at_the_end_is_invalid_utf8(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n1,é".encode()[:-1])
    with pytest.raises(InvalidFile, match="not valid UTF-8"):
        reader(path)


def test_nul_bytes_are_an_invalid_file_naming_the_byte_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,note\n1,a\x00b\n")
    with pytest.raises(InvalidFile, match=r"orders-42\.csv: NUL byte at byte offset 11 \(line 2\)"):
        reader(path)


def test_a_header_without_the_primary_key_column_stops_with_its_columns_and_the_setting(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "Order Number,note\nA-1,x\n")
    with pytest.raises(MissingKeyColumn) as caught:
        reader(path)
    assert str(caught.value) == (
        "orders-42.csv: no key column for stream 'orders' (looked for id; the file has "
        'order_number, note): set \'key_columns\' to {"orders": "<column>"} naming the column '
        "that identifies each row"
    )


@pytest.mark.parametrize("header", ["number", "Order Number", "order_number", "orderNumber"])
def test_the_key_is_read_from_the_first_of_its_columns_the_file_has_in_any_spelling(
    tmp_path: Path, header: str
) -> None:
    path = write(tmp_path, f"{header},note\nA-1,x\n")
    keys = {"number": ("number", "order_number")}
    with reader(path, primary_keys=("number",), key_columns=keys) as r:
        assert list(r) == [{"number": "A-1", "note": "x"}]
    assert "number" in r.columns and "order_number" not in r.unknown_columns


def test_a_chosen_key_column_wins_and_a_column_already_called_like_the_key_is_kept_aside(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "number,ref,note\n7,A-1,x\n")
    with reader(path, primary_keys=("number",), key_columns={"number": ("ref",)}) as r:
        assert list(r) == [{"number_2": "7", "number": "A-1", "note": "x"}]


def test_an_empty_cell_in_an_alias_key_column_is_an_empty_primary_key(tmp_path: Path) -> None:
    path = write(tmp_path, "order_number,note\n,x\n")
    keys = {"number": ("number", "order_number")}
    with pytest.raises(InvalidRecord, match="primary key is empty"):
        list(reader(path, primary_keys=("number",), key_columns=keys))


def test_errors_leave_no_file_open(tmp_path: Path) -> None:
    path = write(tmp_path, "id\nx\n")
    with reader(path) as r, pytest.raises(InvalidRecord):
        list(r)
    assert r._file.closed


# -- bad rows -------------------------------------------------------------------------


def test_a_bad_value_is_an_invalid_record_naming_stream_file_line_column_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, "id,total_incl_tax\n1,1.00\n2,12,50\n".replace("12,50", '"12,50"'))
    with pytest.raises(InvalidRecord) as caught:
        read(path)
    error = caught.value
    assert (error.stream, error.file, error.position, error.column, error.value) == (
        "orders",
        "orders-42.csv",
        "line 3",
        "total_incl_tax",
        "12,50",
    )
    assert "not a decimal number" in error.reason
    assert "orders-42.csv line 3" in str(error)


def test_the_line_of_a_bad_row_is_where_the_row_starts_after_multiline_cells(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,note\n1,"two\nlines"\n2,"three\r\nlines\rhere"\nx,y\n')
    errors: list[InvalidRecord] = []
    read(path, on_invalid=collect(errors))
    assert [e.position for e in errors] == ["line 7"]


def test_a_row_with_too_many_cells_is_an_invalid_record(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n1,a,extra\n")
    with pytest.raises(InvalidRecord, match="3 cells but the header has 2") as caught:
        read(path)
    assert caught.value.position == "line 2"
    assert caught.value.value == ["1", "a", "extra"]


def test_a_row_with_too_few_cells_is_an_invalid_record(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note,is_test\n1,a\n")
    with pytest.raises(InvalidRecord, match="2 cells but the header has 3"):
        read(path)


def test_an_empty_primary_key_is_an_invalid_record(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n,orphan\n")
    with pytest.raises(InvalidRecord, match="primary key is empty") as caught:
        read(path)
    assert caught.value.column == "id"


def test_when_on_invalid_returns_the_bad_row_is_skipped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "id,is_test\n1,true\n2,maybe\n3,false\n4\n")
    errors: list[InvalidRecord] = []
    with reader(path, on_invalid=collect(errors)) as r:
        assert [rec["id"] for rec in r] == [1, 3]
    assert [(e.position, e.column) for e in errors] == [("line 3", "is_test"), ("line 5", None)]
    assert (r.rows_read, r.records_rejected) == (4, 2)


def test_an_exception_from_on_invalid_propagates(tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def stop(error: InvalidRecord) -> None:
        raise Stop(error.position)

    path = write(tmp_path, "id\n1\nnope\n3\n")
    seen = []
    with pytest.raises(Stop, match="line 3"):
        for record in reader(path, on_invalid=stop):
            seen.append(record["id"])
    assert seen == [1]


# -- window ---------------------------------------------------------------------------

WINDOW = WindowFilter(
    "created_at", datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
)


def test_a_row_exactly_at_the_window_start_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "id,created_at\n1,2024-01-01T01:00:00+01:00\n")
    assert [r["id"] for r in read(path, window=WINDOW)] == [1]


def test_a_row_exactly_at_the_window_end_belongs_to_the_next_window(tmp_path: Path) -> None:
    path = write(tmp_path, "id,created_at\n1,2024-01-01T23:59:59.999999Z\n2,2024-01-01T19:00:00-05:00\n")
    with reader(path, window=WINDOW) as r:
        assert [rec["id"] for rec in r] == [1]
    assert r.records_out_of_window == 1


def test_rows_before_the_window_are_dropped_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "id,created_at\n1,2023-12-31T23:59:59Z\n2,2024-01-01T12:00:00Z\n")
    with reader(path, window=WINDOW) as r:
        assert [rec["id"] for rec in r] == [2]
    assert (r.rows_read, r.records_out_of_window) == (2, 1)


def test_rows_with_an_empty_window_field_are_kept_and_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "id,created_at\n1,\n")
    with reader(path, window=WINDOW) as r:
        assert [rec["id"] for rec in r] == [1]
    assert r.records_without_window_value == 1


def test_a_file_with_rows_but_no_window_column_is_read_whole_its_rows_chosen_by_the_server(
    tmp_path: Path,
) -> None:
    """Line files may carry no time at all (the provider's line objects have none): the
    export's range chose the rows, so all of them are the window's."""
    path = write(tmp_path, "id,note,placed_on\n1,a,2024-01-01T05:00:00Z\n2,b,2020-01-01T00:00:00Z\n")
    window = WindowFilter("created_at", WINDOW.start, WINDOW.end, ("created_at", "Date Created"))
    with reader(path, window=window) as r:
        assert r.window_column is None
        assert [rec["id"] for rec in r] == [1, 2]
    assert (r.rows_read, r.records_out_of_window) == (2, 0)


@pytest.mark.parametrize(
    "zone, expected",
    [
        ("America/New_York", "2024-01-01T10:00:00-05:00"),
        ("Asia/Kathmandu", "2024-01-01T10:00:00+05:45"),
        ("Pacific/Kiritimati", "2024-01-01T10:00:00+14:00"),
    ],
)
def test_naive_date_times_are_read_in_the_given_zone_and_aware_ones_keep_their_offset(
    tmp_path: Path, zone: str, expected: str
) -> None:
    path = write(tmp_path, "id,created_at,note\n1,2024-01-01 10:00:00,a\n2,2024-01-01T10:00:00+01:00,b\n")
    with CsvFileReader(
        path, SCHEMA, stream="orders", file_label="f", on_invalid=raise_it, naive_timezone=ZoneInfo(zone)
    ) as r:
        records = list(r)
    assert [rec["created_at"] for rec in records] == [expected, "2024-01-01T10:00:00+01:00"]
    assert not r.naive_timestamps, "a known zone is no guess"


def test_without_a_zone_naive_date_times_are_utc_and_the_reader_says_it_saw_them(tmp_path: Path) -> None:
    path = write(tmp_path, "id,created_at\n1,2024-01-01T10:00:00Z\n")
    with reader(path) as r:
        list(r)
    assert not r.naive_timestamps
    path = write(tmp_path, "id,created_at\n1,2024-01-01T10:00:00\n")
    with reader(path) as r:
        assert [rec["created_at"] for rec in r] == ["2024-01-01T10:00:00+00:00"]
    assert r.naive_timestamps


def test_naive_window_cells_are_placed_in_windows_by_their_instant_in_the_store_zone(tmp_path: Path) -> None:
    """23:30 local on Dec 31 in New York is 04:30 UTC on Jan 1: inside a window that
    starts at UTC midnight, where a UTC reading would drop it (and lose it)."""
    path = write(tmp_path, "id,created_at\n1,2023-12-31 23:30:00\n2,2023-12-31 18:59:59\n")
    with CsvFileReader(
        path,
        SCHEMA,
        stream="orders",
        file_label="f",
        on_invalid=raise_it,
        window=WINDOW,
        naive_timezone=ZoneInfo("America/New_York"),
    ) as r:
        assert [rec["id"] for rec in r] == [1]
    assert r.records_out_of_window == 1


def test_a_header_only_file_without_the_window_column_is_simply_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n\n")
    with reader(path, window=WINDOW) as r:
        assert list(r) == []


@pytest.mark.parametrize("header", ["date_created", "Date Created", "dateCreated"])
def test_the_window_column_is_found_under_an_alias_in_any_header_style(tmp_path: Path, header: str) -> None:
    path = write(
        tmp_path,
        f"id,{header}\n1,2024-01-01T09:00:00+09:00\n2,2024-01-02T09:00:00+09:00\n3,2024-01-01 12:00\n",
    )
    window = WindowFilter("created_at", WINDOW.start, WINDOW.end, ("created_at", "date_created"))
    with reader(path, window=window) as r:
        assert r.window_column == "date_created"
        records = list(r)
    assert [rec["id"] for rec in records] == [1, 3]
    assert r.records_out_of_window == 1
    assert records[1]["date_created"] == "2024-01-01T12:00:00+00:00", "typed as a date-time, like created_at"


def test_an_alias_window_column_is_validated_as_a_date_time(tmp_path: Path) -> None:
    path = write(tmp_path, "id,date_created\n1,yesterday\n")
    window = WindowFilter("created_at", WINDOW.start, WINDOW.end, ("created_at", "date_created"))
    with pytest.raises(InvalidRecord, match="column 'date_created': not an ISO-8601 date-time"):
        list(reader(path, window=window))


def test_the_schema_s_own_window_field_wins_over_an_alias(tmp_path: Path) -> None:
    path = write(tmp_path, "id,date_created,created_at\n1,2023-06-01T00:00:00Z,2024-01-01T05:00:00Z\n")
    window = WindowFilter("created_at", WINDOW.start, WINDOW.end, ("created_at", "date_created"))
    with reader(path, window=window) as r:
        assert [rec["id"] for rec in r] == [1]
        assert r.window_column == "created_at"


def test_a_window_column_the_schema_types_otherwise_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "id,note\n1,2024-01-01T05:00:00Z\n")
    window = WindowFilter("created_at", WINDOW.start, WINDOW.end, ("note",))
    with pytest.raises(InvalidFile, match="column 'note' cannot place rows in date windows"):
        reader(path, window=window)


@pytest.mark.parametrize("offset", ["-12:00", "-09:30", "-03:30", "+00:00", "+05:45", "+09:00", "+14:00"])
def test_rows_on_both_edges_are_judged_as_instants_in_every_utc_offset(tmp_path: Path, offset: str) -> None:
    sign = 1 if offset[0] == "+" else -1
    minutes = sign * (int(offset[1:3]) * 60 + int(offset[4:]))
    edges = [
        WINDOW.start,
        WINDOW.end,
        WINDOW.start - timedelta(microseconds=1),
        WINDOW.end - timedelta(seconds=1),
    ]
    tz = timezone(timedelta(minutes=minutes))
    lines = [f"{i},{edge.astimezone(tz).isoformat()}" for i, edge in enumerate(edges)]
    path = write(tmp_path, "id,created_at\n" + "\n".join(lines) + "\n")
    assert [r["id"] for r in read(path, window=WINDOW)] == [0, 3]


def test_adjacent_windows_own_every_row_exactly_once(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},2024-01-0{1 + i // 4}T{(i % 4) * 6:02d}:00:00Z" for i in range(12))
    path = write(tmp_path, "id,created_at\n" + rows + "\n")
    bounds = [
        "2024-01-01T00:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
        "2024-01-03T12:00:00+00:00",
        "2024-01-04T00:00:00+00:00",
    ]
    seen: list[int] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        seen += [r["id"] for r in read(path, window=WindowFilter("created_at", start, end))]
    assert sorted(seen) == list(range(12))
