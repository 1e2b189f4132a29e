"""Read a Clover export file, ``{"elements": [ ... ]}``, as validated records.

Why decode the whole file: Clover caps a file at 1000 objects, so one
``msgspec.json.decode`` call (much faster than the stdlib) is both simple and bounded in
memory, as long as the file really is that small: a file over :data:`MAX_FILE_BYTES`
(a host may send anything) is refused before it is read, and one nested deeper than the
decoder goes is refused as invalid, so memory and stack stay bounded whatever arrives. Numbers with a fraction are decoded as :class:`decimal.Decimal`, never floats,
so any amount stays exact. Each element is checked against the stream's schema with a
validator compiled once per schema (see :mod:`json_validation`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import msgspec

from tap_commerce_exports.errors import InvalidFile, InvalidRecord
from tap_commerce_exports.files.json_validation import Check, Problem, compile_check
from tap_commerce_exports.files.reader_base import ExportFileReader

_UTF8_BOM = b"\xef\xbb\xbf"
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_BYTE_POSITION = re.compile(r"\(byte (\d+)\)")
#: Largest file decoded (decoded objects take several times the file's size). 1000
#: export objects are a few MB; this is far above that, far below a hostile inflation.
MAX_FILE_BYTES = 64 << 20


def _line_at(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode_problem(data: bytes, offset: int, decode_error: Exception) -> str:
    """Our own words for why ``data`` (which starts at byte ``offset`` of the file) is not JSON.

    Why not the decoder's message: its wording and even its exception type change between
    msgspec releases (0.23 reports bad UTF-8 as a ``DecodeError`` in new words, where older
    ones raised ``UnicodeDecodeError``), and what a user reads must not change with a
    dependency. Bad UTF-8 is found by Python's own decoder, which gives the exact byte.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = offset + exc.start
        return f"not valid UTF-8 at byte offset {at} (line {_line_at(data, exc.start)}): {exc.reason}"
    if not data.strip():
        return "not valid JSON: the file is empty"
    if b"\x00" in data:
        at = offset + data.index(b"\x00")
        return f"not valid JSON: NUL byte at byte offset {at}"
    match = _BYTE_POSITION.search(str(decode_error))
    if match is None:
        return "not valid JSON: the document ends early or is malformed"
    at = int(match.group(1))
    return f"not valid JSON: malformed at byte offset {offset + at} (line {_line_at(data, at)})"


# Compiled validators by schema object. The schema is stored with its check so that its
# id() cannot be reused by another object while the entry exists.
_CHECKS: dict[int, tuple[Mapping[str, Any], Check]] = {}


def schema_check(schema: Mapping[str, Any]) -> Check:
    """The compiled validator of ``schema``, built on first use."""
    entry = _CHECKS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_CHECKS) > 64:
            _CHECKS.clear()
        entry = (schema, compile_check(schema))
        _CHECKS[id(schema)] = entry
    return entry[1]


class JsonElementsFileReader(ExportFileReader):
    """Records of one ``{"elements": [...]}`` export file.

    The constructor reads and decodes the file and raises :class:`InvalidFile` if it is
    not JSON, not an object, or has no ``elements`` list. Iteration yields each element
    (as decoded; fields the schema does not declare are kept). An element that is not an
    object, breaks the schema, or has an empty primary key becomes an
    :class:`InvalidRecord` (position ``element N``, N the 0-based index in ``elements``)
    passed to ``on_invalid``: if that returns, the element is skipped and counted.
    """

    def _open(self, schema: Mapping[str, Any]) -> None:
        self._elements = self._load()
        seen: set[str] = set()
        for element in self._elements:
            if type(element) is dict:
                seen.update(element)
        self.columns = sorted(seen)
        window = self.window
        # None: no element has the window field; all are kept (see files.window)
        self.window_column = window.find_column(seen) if window is not None else None
        self._check = schema_check(schema)

    def _load(self) -> list[object]:
        size = self.path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidFile(
                f"{self.file_label}: the file is {size} bytes; a JSON export file is read whole and "
                f"at most {MAX_FILE_BYTES >> 20} MiB is accepted (one of 1000 objects is far smaller)"
            )
        data = self.path.read_bytes()
        offset = 0
        if data.startswith(_UTF8_BOM):
            offset = len(_UTF8_BOM)
            data = data[offset:]
        try:
            document = _DECODER.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise InvalidFile(f"{self.file_label}: {_decode_problem(data, offset, exc)}") from None
        except RecursionError:
            raise InvalidFile(
                f"{self.file_label}: not valid export JSON: values are nested too deep "
                "(hundreds of levels; export objects nest a few)"
            ) from None
        del data  # only the decoded document is kept
        if type(document) is not dict:
            raise InvalidFile(
                f"{self.file_label}: expected a JSON object with an 'elements' list, "
                f"got {type(document).__name__}"
            )
        elements = document.get("elements")
        if type(elements) is not list:
            raise InvalidFile(f"{self.file_label}: JSON object has no 'elements' list")
        return elements

    def _records(self) -> Iterator[dict[str, Any]]:
        check = self._check
        keys = self.primary_keys
        window = self.window if self.window_column is not None else None
        field = self.window_column or ""  # read only when window is not None
        try:
            for index, element in enumerate(self._elements):
                self.rows_read += 1
                # Keys first: a null key is reported as such, not as a type mismatch.
                if type(element) is not dict:
                    problem: Problem | None = Problem((), element, "element is not a JSON object")
                else:
                    problem = None
                    for key in keys:
                        if element.get(key) is None:
                            problem = Problem((key,), None, "primary key is empty")
                            break
                    if problem is None:
                        problem = check(element)
                if problem is None and window is not None:
                    instant = element.get(field)  # type: ignore[attr-defined]  # a dict here: checked above
                    if instant is None:
                        self.records_without_window_value += 1
                    else:
                        try:
                            inside = window.start <= instant < window.end
                        except TypeError:
                            problem = Problem(
                                (field,),
                                instant,
                                "window field is not comparable to the window bounds",
                            )
                        else:
                            if not inside:
                                self.records_out_of_window += 1
                                continue
                if problem is not None:
                    self.records_rejected += 1
                    self._on_invalid(
                        InvalidRecord(
                            stream=self.stream,
                            file=self.file_label,
                            position=f"element {index}",
                            column=problem.dotted_path() or None,
                            value=problem.value,
                            reason=problem.reason,
                        )
                    )
                    continue
                yield element  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        """Drop the decoded elements (the file itself is already closed)."""
        self._elements = []
