"""One CSV export file as blocks of typed Arrow columns, converted in C++ (pyarrow).

Why: the row path (``csv_reader.py``) spends ~25 us of Python per row making a dict of
typed values, which Parquet output then takes apart again. A file bound for Parquet
needs no Python object per cell: here ``pyarrow.csv`` reads every column as text, a
block of rows at a time, and each column is converted vectorized to the SAME values the
row path's converters give (``converters.py``), then the window filter and the counters
are applied to columns. Anything per block or per column, nothing per record.

Why it stops so readily: the row path owns the exact error and reject semantics (an
:class:`~tap_commerce_exports.errors.InvalidRecord` with its line, column and reason; a
file-level ``InvalidFile``). Whenever a block is not the plain case -- a ragged row, a
cell a converter would refuse or that this module does not know to convert exactly
(``+5``, ``7e33``, a naive time in a DST gap, years 0000/0001/9999), an empty primary
key, a JSON column -- nothing of that block is given, and the row path reads the file
from that block's first row on (a CSV row's reading depends only on what comes before
it, so the blocks before are exactly the rows the row path would have read); a header
that is not plain (a BOM, a quote, odd line breaks) leaves the whole file to it. So this
path never decides anything differently from the row path: it gives the row path's
values or gives up. ``tests/test_csv_columns.py`` runs both over the same files.

pyarrow is the optional ``parquet`` extra: it is imported only when a file is read here.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tap_commerce_exports.files.ahead import ahead
from tap_commerce_exports.files.converters import ColumnKind
from tap_commerce_exports.files.window import WindowFilter


class CsvFile(Protocol):
    """What this module reads of an opened, not yet iterated ``CsvFileReader``: its
    header's decisions (taken once, by the row path's own code) and its counters."""

    path: Path
    columns: list[str]
    kinds: list[ColumnKind]
    primary_keys: tuple[str, ...]
    window: WindowFilter | None
    window_column: str | None
    naive_timezone: tzinfo | None
    naive_timestamps: bool
    #: Rows the row path skips: those blocks read here already took.
    skip_rows: int
    rows_read: int
    records_out_of_window: int
    records_without_window_value: int

    def spend(self) -> None: ...


#: Bytes of CSV text converted (and then written) at a time: a file's memory stays flat
#: whatever its size, and each block's rows reach the batch files (and the loader) while
#: the next block is read. About one batch file of orders (25,000 rows); a smaller block
#: costs more CPU per row (each block pays Arrow's calls once per column).
BLOCK = 8 << 20
#: The first cell of the row appended to every block (see :func:`_parse_block`): no
#: export has a cell like it (control characters around a name).
_END_MARK = "\x1ftap-commerce-exports:block-end\x1f"

# What each kind accepts here: a subset of what its converter accepts, chosen so that
# Arrow's cast gives exactly the converter's value (anything else: the row path).
_INTEGER = r"^[+-]?[0-9]{1,19}$"
#: What the converters accept of a column that is only checked, not written (a
#: deselected property): its cells must convert, whatever their size.
_ANY_INTEGER = r"^[+-]?[0-9]+$"
_ANY_DECIMAL = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,6})?$"
#: Money that fits decimal128(38, 9) whatever its digits: up to 29 before the point, or
#: up to 15 with a one-digit exponent. Bounded because Arrow's cast does NOT refuse an
#: overflow (measured with pyarrow 26: '7e33' became 51430069374868094920950521096.12...,
#: where the row path refuses the value).
_DECIMAL = (
    r"^[+-]?(?:(?:[0-9]{1,29}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})"
    r"|(?:[0-9]{1,15}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})[eE][+-]?[0-9])$"
)
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: Years 0000, 0001 and 9999 excluded: their instants may not exist once in UTC (the
#: converter checks them one by one).
_YEAR = r"(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8]|0[1-9][0-9]{2}|00[1-9][0-9]|000[2-9])"
_DATE_TIME = (
    rf"^{_YEAR}-[0-9]{{2}}-[0-9]{{2}}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]"
    r"(?::[0-5][0-9](?:\.[0-9]{1,6})?)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$"
)
_OFFSET = r"(?:Z|[+-][0-9]{2}:[0-9]{2})$"
_TRUE = ("true", "t", "yes", "1")
_FALSE = ("false", "f", "no", "0")


class _GiveUp(Exception):
    """The file is not the plain case: the caller reads it row by row."""


def read_blocks(reader: CsvFile, types: Mapping[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file block by block: (rows kept, the block's columns named in ``types``
    (column -> Arrow type wanted), typed and window-filtered), in file order.

    Each block's counters are on the reader before it is yielded, as iterating the
    reader over those rows would have set them. When every block was read the reader is
    spent; when a block is not the plain case, nothing of it is yielded and the reader's
    ``skip_rows`` says how many rows the blocks before it took: iterating the reader
    then reads the rest row by row, exactly as the row path would have read it (a CSV
    row's reading depends only on what comes before it). Columns the file lacks are
    left out.
    """
    try:
        import pyarrow as pa  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import pyarrow.compute as pc  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - the parquet extra brings it
        return
    if not _plain_header(reader):
        return
    # Each block is parsed in a thread of its own while the one before is converted.
    parsed = ahead(_parse_block(pa, reader, text) for text in _row_blocks(reader, BLOCK))
    try:
        yield from _typed_blocks(pa, pc, reader, types, parsed)
    finally:
        parsed.close()  # a block that gives up, or a caller that stops: the thread ends


def _typed_blocks(
    pa: Any, pc: Any, reader: CsvFile, types: Mapping[str, Any], parsed: Iterator[Any]
) -> Iterator[tuple[int, dict[str, Any]]]:
    while True:
        try:
            block = next(parsed, None)
            if block is None:
                break
            typed, naive = _typed_block(pa, pc, reader, types, block)
            keep, outside, undated = _window_keep(pa, pc, reader, typed, block.num_rows)
            columns = {c: v if keep is None else v.filter(keep) for c, v in typed.items() if c in types}
        except (_GiveUp, pa.ArrowException, ValueError, TypeError, ArithmeticError):
            # ArrowInvalid & co.: a cell or a row Arrow would not convert; nothing of
            # this block was yielded and its rows are the row path's
            return
        reader.rows_read += block.num_rows
        reader.skip_rows += block.num_rows
        reader.records_out_of_window += outside
        reader.records_without_window_value += undated
        if naive and reader.naive_timezone is None:
            reader.naive_timestamps = True
        yield block.num_rows - outside, columns
    reader.spend()


def _plain_header(reader: CsvFile) -> bool:
    """A first line Arrow and ``csv.reader`` split alike: no BOM, quote or stray ``\\r``,
    as many cells as the reader's header (so Arrow's first row IS that header)."""
    with open(reader.path, "rb") as raw:
        first = raw.readline(1 << 20)
    if first.startswith(codecs.BOM_UTF8) or not first.endswith(b"\n"):
        return False
    head = first[:-2] if first.endswith(b"\r\n") else first[:-1]
    if not head or b'"' in head or b"\r" in head:
        return False
    return head.count(b",") + 1 == len(reader.columns)


def _row_blocks(reader: CsvFile, size: int) -> Iterator[bytes]:
    """The file's text after its header line in blocks of about ``size`` bytes, each
    ending at a line break outside quotes: whole rows, so Arrow never cuts one.

    Why our own cut: Arrow's own block reader can end a block between the '\r' and
    '\n' of a quoted "\r\n" and read 'a\r\n' as 'a\r' (found by
    tests/test_csv_columns.py; real exports hold such cells: Windows line breaks in
    notes), and that cannot be told from the cells it gives. A '\n' is a row's end when
    the quotes before it are even in number (two per quoted cell, two per escaped
    quote); a file that quotes otherwise (a stray quote inside a cell) can be cut inside
    a cell by this count, which :func:`_parse_block` detects. Counting costs one
    ``bytes.count`` per block, nothing per row."""
    with open(reader.path, "rb") as raw:
        raw.readline(1 << 20)  # the header (``_plain_header``: one plain line)
        rest = b""
        while data := raw.read(size):
            text = rest + data if rest else data
            end = _last_row_end(text)
            if end < 0:
                rest = text  # no row ends here yet: read on
                continue
            rest = text[end:]
            yield text[:end]
        if rest:
            yield rest if rest.endswith((b"\n", b"\r")) else rest + b"\n"


def _last_row_end(text: bytes) -> int:
    """The offset just after the last '\n' of ``text`` with an even number of quotes
    before it (``text`` starts at a row's start), or -1."""
    quotes = text.count(b'"')
    end = len(text)
    while (line_end := text.rfind(b"\n", 0, end)) >= 0:
        quotes -= text.count(b'"', line_end, end)
        if not quotes % 2:
            return line_end + 1
        end = line_end
    return -1


def _parse_block(pa: Any, reader: CsvFile, text: bytes) -> Any:
    """One block of whole rows as an Arrow record batch, every column as text (an empty
    cell: null).

    A row of :data:`_END_MARK` follows the block's text: if the block really ends
    outside quotes, Arrow reads that row as its own last row, which is then dropped; if
    the quote count cut it inside a cell (a file that quotes oddly), the row is swallowed
    by that cell, and the block gives up (the row path reads it). Arrow, unlike
    ``csv.reader``, closes a cell left open at the end of its input without a word."""
    import pyarrow.csv as pacsv  # type: ignore[import-not-found,import-untyped,unused-ignore]

    count = len(reader.columns)
    names = [f"c{i}" for i in range(count)]
    data = text + (_END_MARK + "," * (count - 1) + "\n").encode()
    table = pacsv.read_csv(
        pa.py_buffer(data),
        # One thread and one Arrow block (the whole text): the tap shares the machine
        # with its loader, and Arrow's threaded reader cost twice the CPU here (measured:
        # 0.46 s vs 0.24 s on 68 MB of orders).
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(data) + 1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    rows = table.num_rows - 1
    if rows < 0 or table.column(0)[rows].as_py() != _END_MARK:
        raise _GiveUp
    batches = table.slice(0, rows).combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)


def _typed_block(
    pa: Any, pc: Any, reader: CsvFile, types: Mapping[str, Any], block: Any
) -> tuple[dict[str, Any], bool]:
    """One block's columns converted (those in ``types`` and the window column), and
    whether a date-time was naive."""
    limit = csv.field_size_limit()
    typed: dict[str, Any] = {}
    naive = False
    for index, column in enumerate(reader.columns):
        cells = block.column(index)
        if (pc.max(pc.binary_length(cells)).as_py() or 0) > limit:
            raise _GiveUp  # csv.reader refuses the file: let it say so
        if column in reader.primary_keys and cells.null_count:
            raise _GiveUp  # a row without its key is rejected, row by row
        kind = reader.kinds[index]
        wanted = types.get(column)
        if kind == "date-time":
            value, saw_naive = _instants(pa, pc, cells, reader.naive_timezone)
            naive = naive or saw_naive
        else:
            value = _convert(pa, pc, cells, kind, wanted)
        if column in types or column == reader.window_column:
            if wanted is not None and value.type != wanted:
                raise _GiveUp  # the row path's dicts would not fit this column either
            typed[column] = value
    return typed, naive


def _convert(pa: Any, pc: Any, cells: Any, kind: str | None, wanted: Any) -> Any:
    """One column of text cells as its converter's values (date-times: ``_instants``);
    ``wanted`` None: a column only checked as its converter checks it, not written."""
    if kind is None:
        return cells
    if kind == "date":
        _all_match(pc, pc.unique(cells), _DATE)
        if pc.any(pc.match_substring_regex(cells, "^0000")).as_py():
            raise _GiveUp
        pc.cast(cells, pa.date32())  # validates the calendar date; the text is the value
        return cells
    if kind == "integer":
        if wanted is None:
            _all_match(pc, cells, _ANY_INTEGER)
            return cells
        _all_match(pc, cells, _INTEGER)
        return pc.cast(cells, pa.int64())
    if kind == "decimal":
        if wanted is None:
            _all_match(pc, pc.unique(cells), _ANY_DECIMAL)
            return cells
        if wanted != pa.decimal128(38, 9):  # the digit bounds of _DECIMAL are this type's
            raise _GiveUp
        # Money repeats (prices, shipping rates, taxes): each distinct text is matched
        # once (measured: 23,000 orders' money columns hold 300-1,000 distinct texts each;
        # matching those instead of every cell cut the check from 35 to 17 ms a block).
        _all_match(pc, pc.unique(cells), _DECIMAL)
        return pc.cast(cells, wanted)
    if kind == "boolean":
        lower = pc.ascii_lower(cells)
        true = pc.is_in(lower, value_set=pa.array(_TRUE))
        false = pc.is_in(lower, value_set=pa.array(_FALSE))
        if pc.any(pc.and_(pc.is_valid(cells), pc.invert(pc.or_(true, false)))).as_py():
            raise _GiveUp
        return pc.if_else(pc.is_valid(cells), true, pa.scalar(None, pa.bool_()))
    raise _GiveUp  # JSON cells (and any kind not known here): the row path


def _all_match(pc: Any, cells: Any, pattern: str) -> None:
    if pc.all(pc.match_substring_regex(cells, pattern)).as_py() is False:
        raise _GiveUp


def _instants(pa: Any, pc: Any, cells: Any, zone: Any) -> tuple[Any, bool]:
    """Date-time texts as UTC timestamps (what the Parquet encoder writes), whether any
    was naive. Naive texts are in ``zone`` (None: UTC), read as ``datetime.replace``
    reads them: an ambiguous time is its first occurrence (fold 0); a time in a DST gap
    gives up (Python and Arrow disagree there)."""
    utc = pa.timestamp("us", tz="UTC")
    _all_match(pc, cells, _DATE_TIME)
    try:  # the usual file: every text has its offset (Arrow refuses a naive one here)
        return pc.cast(cells, utc), False
    except pa.ArrowInvalid:
        pass
    aware = pc.match_substring_regex(cells, _OFFSET)
    naive_count = len(cells) - cells.null_count - (pc.sum(aware).as_py() or 0)
    if not naive_count:
        raise _GiveUp  # not a naive text that Arrow refused: something else
    if zone is None or zone is timezone.utc:
        key = "UTC"
    elif isinstance(zone, ZoneInfo):
        key = zone.key
    else:
        raise _GiveUp
    null_text = pa.scalar(None, pa.string())
    local = pc.cast(pc.if_else(aware, null_text, cells), pa.timestamp("us"))
    placed = pc.assume_timezone(local, timezone=key, ambiguous="earliest", nonexistent="raise")
    if not naive_count == len(cells) - cells.null_count:
        placed = pc.if_else(aware, pc.cast(pc.if_else(aware, cells, null_text), utc), placed.cast(utc))
    return placed.cast(utc), True


def _window_keep(pa: Any, pc: Any, reader: CsvFile, typed: dict[str, Any], rows: int) -> tuple[Any, int, int]:
    """The rows inside ``[start, end)`` (a row without a window value is kept; None:
    every row), the rows outside, the rows without a window value."""
    window, column = reader.window, reader.window_column
    if window is None or column is None:
        return None, 0, 0
    start, end = window.start, window.end
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise _GiveUp
    instants = typed[column]
    utc = pa.timestamp("us", tz="UTC")
    inside = pc.and_(
        pc.greater_equal(instants, pa.scalar(start.astimezone(timezone.utc), utc)),
        pc.less(instants, pa.scalar(end.astimezone(timezone.utc), utc)),
    )
    keep = pc.fill_null(inside, True)
    kept = pc.sum(keep).as_py() or 0
    return (None if kept == rows else keep), rows - kept, instants.null_count
