"""Properties of the file layer that must hold for ANY input, checked with hypothesis."""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_commerce_exports.files import (
    CsvFileReader,
    JsonElementsFileReader,
    csv_converter,
    normalize_header,
    normalize_headers,
    utc_instant_text,
)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def raise_it(error: Exception) -> None:
    raise error


def write_bytes(data: bytes, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=suffix)  # noqa: SIM115
    with handle:
        handle.write(data)
    return Path(handle.name)


# Cell text: any unicode except NUL and lone surrogates (neither can be valid UTF-8 text
# in an export), biased towards the characters that make CSV hard.
cell_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([",", '"', "\n", "\r", " ", "\ufeff", "é", "日", "🎉"]),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(1, 5))
    # Distinct, already-normalized names so the header reads back unchanged.
    header = draw(
        st.lists(
            st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True), min_size=width, max_size=width, unique=True
        )
    )
    rows = draw(st.lists(st.lists(cell_text, min_size=width, max_size=width), max_size=8))
    return header, rows


@FAST
@given(
    table=tables(),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    line_end=st.sampled_from(["\r\n", "\n"]),
    bom=st.booleans(),
)
def test_any_table_written_by_csv_writer_reads_back_exactly(table, quoting, line_end, bom) -> None:  # noqa: ANN001
    header, rows = table
    if line_end == "\n":
        # Python 3.11's writer only quotes the characters of its own line terminator, so
        # with "\n" it would write a bare "\r" that no CSV reader can tell from a line end.
        rows = [[cell.replace("\r", "") for cell in row] for row in rows]
    # A single-column row holding '' is written as '""' by QUOTE_MINIMAL, so it survives.
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, quoting=quoting, lineterminator=line_end)
    writer.writerow(header)
    writer.writerows(rows)
    data = ("\ufeff" if bom else "") + buffer.getvalue()
    path = write_bytes(data.encode("utf-8"), ".csv")
    try:
        with CsvFileReader(
            path, {"properties": {}}, stream="s", file_label="f.csv", on_invalid=raise_it
        ) as reader:
            assert reader.columns == header
            records = list(reader)
    finally:
        path.unlink()
    assert records == [{k: (v or None) for k, v in zip(header, row, strict=False)} for row in rows]


@FAST
@given(st.text(max_size=30))
def test_normalize_header_is_idempotent_and_yields_word_characters(name: str) -> None:
    once = normalize_header(name)
    assert normalize_header(once) == once
    assert once == "" or re.fullmatch(r"[^\W_](?:\w*[^\W_])?", once)
    assert "__" not in once


@FAST
@given(st.lists(st.text(max_size=10), min_size=1, max_size=12))
def test_normalized_header_rows_are_unique_and_never_empty(names: list[str]) -> None:
    result = normalize_headers(names)
    assert len(result) == len(names)
    assert len(set(result)) == len(result)
    assert all(re.fullmatch(r"\w+", n) for n in result)


@FAST
@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**10), max_value=10**10))
def test_money_text_round_trips_exactly(value: Decimal) -> None:
    text = f"{value:f}"
    converted = csv_converter({"type": ["number", "null"]})(text)  # type: ignore[misc]
    assert converted == value
    assert f"{converted:f}" == text


@FAST
@given(
    instant=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
    ),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    separator=st.sampled_from(["T", " "]),
    zulu=st.booleans(),
)
def test_any_offset_spelling_of_an_instant_keeps_that_instant(
    instant, offset_minutes, separator, zulu
) -> None:  # noqa: ANN001
    convert = csv_converter({"type": "string", "format": "date-time"})
    assert convert is not None
    local = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))
    text = local.isoformat(sep=separator)
    if zulu and offset_minutes == 0:
        text = text.replace("+00:00", "Z")
    normalized = convert(text)
    assert datetime.fromisoformat(normalized) == instant
    assert normalized[10] == "T" and (normalized.endswith("Z") or normalized[-6] in "+-")


@FAST
@given(
    a=st.datetimes(
        timezones=st.just(timezone.utc), min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)
    ),
    b=st.datetimes(
        timezones=st.just(timezone.utc), min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)
    ),
)
def test_normalized_text_order_is_instant_order(a: datetime, b: datetime) -> None:
    assert (utc_instant_text(a) < utc_instant_text(b)) == (a < b)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
elements = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=8), "amount": st.one_of(st.none(), st.integers(-(10**9), 10**9))},
        optional={"note": st.text(max_size=10), "extra": json_values, "createdTime": st.integers(0, 2**42)},
    ),
    max_size=6,
)
PAYMENT_SCHEMA = {
    "type": "object",
    "additionalProperties": True,
    "properties": {
        "id": {"type": "string"},
        "amount": {"type": ["integer", "null"]},
        "note": {"type": ["string", "null"]},
        "createdTime": {"type": ["integer", "null"]},
    },
}


@settings(FAST, max_examples=80)
@given(elements)
def test_any_valid_element_list_round_trips_through_the_json_reader(items: list[dict]) -> None:
    path = write_bytes(json.dumps({"elements": items}).encode(), ".json")
    try:
        reader = JsonElementsFileReader(
            path,
            PAYMENT_SCHEMA,
            stream="payments",
            file_label="p.json",
            on_invalid=raise_it,
            primary_keys=("id",),
        )
        assert list(reader) == items
        assert reader.columns == sorted({k for item in items for k in item})
    finally:
        path.unlink()


@FAST
@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
    ),
    span_minutes=st.integers(1, 90 * 24 * 60),
    offsets=st.lists(st.integers(-(23 * 60 + 59), 23 * 60 + 59), min_size=1, max_size=8),
    shifts=st.lists(st.integers(-5 * 24 * 60, 95 * 24 * 60), min_size=1, max_size=8),
)
def test_the_window_keeps_a_row_exactly_when_its_instant_is_inside(
    start, span_minutes, offsets, shifts
) -> None:  # noqa: ANN001
    from tap_commerce_exports.files import CsvFileReader, WindowFilter

    end = start + timedelta(minutes=span_minutes)
    instants = [start + timedelta(minutes=s) for s in shifts] + [start, end, end - timedelta(microseconds=1)]
    lines = ["id,created_at"]
    for i, instant in enumerate(instants):
        local = instant.astimezone(timezone(timedelta(minutes=offsets[i % len(offsets)])))
        lines.append(f"{i},{local.isoformat()}")
    path = write_bytes(("\n".join(lines) + "\n").encode(), ".csv")
    schema = {
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
        }
    }
    with CsvFileReader(
        path,
        schema,
        stream="s",
        file_label="f",
        on_invalid=raise_it,
        window=WindowFilter("created_at", start, end),
    ) as reader:
        kept = {r["id"] for r in reader}
    assert kept == {i for i, instant in enumerate(instants) if start <= instant < end}
