"""A streaming pre-scan of a text file's bytes: UTF-8 only, no NUL.

Why a separate pass: the text layer decodes in 8 KB chunks, so a decode error surfaces
rows ahead of the bad byte and cannot say where it is; and Python 3.11's ``csv`` module
accepts NUL characters silently. One pass over the raw bytes (1 MiB at a time, never the
whole file) finds either problem with its exact byte offset and line, and it does so
before a single record is emitted, so a broken file never yields half its rows.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from tap_commerce_exports.errors import InvalidFile

_CHUNK = 1 << 20


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


def check_utf8_text(path: Path, file_label: str) -> None:
    """Raise :class:`InvalidFile` at the first NUL byte or invalid UTF-8 sequence."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with open(path, "rb") as raw:
        while chunk := raw.read(_CHUNK):
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
