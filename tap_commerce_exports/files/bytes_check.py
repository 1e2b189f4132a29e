"""A streaming pre-scan of a text file's bytes: UTF-8 only, no NUL, no endless line.

Why a separate pass: the text layer decodes in 8 KB chunks, so a decode error surfaces
rows ahead of the bad byte and cannot say where it is; and Python 3.11's ``csv`` module
accepts NUL characters silently. One pass over the raw bytes (1 MiB at a time, never the
whole file) finds either problem with its exact byte offset and line, and it does so
before a single record is emitted, so a broken file never yields half its rows.

The same pass bounds line length (:data:`MAX_LINE_BYTES`): Python's ``csv`` reads a
whole physical line before its field limit applies, so one 100 MB line would take
several times that in memory. Counting the bytes since the last line break costs two
``find`` calls per 1 MiB chunk, nothing per line.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from tap_commerce_exports.errors import InvalidFile

_CHUNK = 1 << 20
#: Longest physical line accepted. A real export row is a few KB; the bound keeps a
#: hostile one from costing more than a few times this in memory. At least ``_CHUNK``.
MAX_LINE_BYTES = 8 << 20


def _line_of(path: Path, offset: int) -> int:
    """1-based line number (counting b'\\n') of the byte at ``offset``."""
    newlines = 0
    remaining = offset
    with open(path, "rb") as raw:
        while remaining > 0:
            chunk = raw.read(min(_CHUNK, remaining))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            remaining -= len(chunk)
    return newlines + 1


def _bad_utf8(path: Path, file_label: str, at: int, reason: str) -> InvalidFile:
    return InvalidFile(
        f"{file_label}: not valid UTF-8 at byte offset {at} (line {_line_of(path, at)}): {reason}"
    )


def _line_too_long(path: Path, file_label: str, start: int, max_line: int) -> InvalidFile:
    return InvalidFile(
        f"{file_label}: line {_line_of(path, start)} (from byte offset {start}) is longer than "
        f"{max_line >> 20} MiB; no export row is that long: the file is damaged or not a CSV export"
    )


def check_utf8_text(path: Path, file_label: str, *, max_line: int = MAX_LINE_BYTES) -> None:
    """Raise :class:`InvalidFile` at the first NUL byte, invalid UTF-8 sequence or line
    longer than ``max_line`` bytes (line breaks: ``\\n``, or ``\\r`` alone)."""
    max_line = max(max_line, _CHUNK)  # the chunk-wise count is exact from one chunk up
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    line_start = 0  # byte offset where the current line began
    with open(path, "rb") as raw:
        while chunk := raw.read(_CHUNK):
            # A line break in this chunk? '\n' ends LF and CRLF lines; '\r' (old Mac
            # files) is looked for only in a chunk without any '\n', so LF files pay
            # two memchr-speed scans per MiB, nothing more.
            last = chunk.rfind(b"\n")
            brk = b"\n"
            if last < 0:
                last = chunk.rfind(b"\r")
                brk = b"\r"
            if last < 0:
                if offset + len(chunk) - line_start > max_line:
                    raise _line_too_long(path, file_label, line_start, max_line)
            else:
                first = chunk.find(brk)
                if offset + first - line_start > max_line:
                    raise _line_too_long(path, file_label, line_start, max_line)
                line_start = offset + last + 1
            nul = chunk.find(b"\x00")
            if nul >= 0:
                at = offset + nul
                raise InvalidFile(
                    f"{file_label}: NUL byte at byte offset {at} (line {_line_of(path, at)}); "
                    "not a text CSV file"
                )
            # Pure-ASCII chunks are valid UTF-8 unless a multi-byte sequence is pending.
            pending = len(decoder.getstate()[0])
            if pending or not chunk.isascii():
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    raise _bad_utf8(path, file_label, offset - pending + exc.start, exc.reason) from None
            offset += len(chunk)
    pending = len(decoder.getstate()[0])
    if pending:
        raise _bad_utf8(path, file_label, offset - pending, "file ends inside a multi-byte character")
