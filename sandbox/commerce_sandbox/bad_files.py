"""Bad export files on demand: the ``fault_bad_file`` switch of the sandbox.

Real export files are sometimes not what the guide promises: a ragged row, a byte-order
mark, Windows or Unix line ends, bytes that are not UTF-8, NUL bytes, an empty body, a
header with no rows, an error page instead of JSON, a JSON object without ``elements``,
a value that does not fit its column. Setting ``fault_bad_file`` to one of
:data:`KINDS` makes the NEXT export file the file host serves (whose format the kind
applies to, and which has rows when the kind needs one) a damaged copy of itself; the
switch then turns itself off (back to ``None``). A comma-separated list (``"bom,crlf"``)
damages the next files in turn, one kind each. The damaged file stays damaged: later
downloads of the same URL path get the same bytes, as a real bad file would.

What was done is recorded (:func:`served`), so a test can compare the tap's message
with the exact line, byte offset, column and value that were damaged, and know which
record's key a rejected row carried.

Kinds and the formats they apply to:

=================  ======  =====  ======================================================
kind               CSV     JSON   what the served file is
=================  ======  =====  ======================================================
``ragged``         yes     -      the middle data row loses its last cell
``bom``            yes     yes    a UTF-8 byte-order mark before the first byte
``crlf``           yes     -      every line break ``\\r\\n``, inside quoted cells too
``lf``             yes     -      every line break ``\\n``, inside quoted cells too
``invalid_utf8``   yes     yes    bytes ``\\xc3\\x28`` at the start of the middle row /
                                  inside the middle element's ``id``
``nul``            yes     yes    a NUL byte at the same place
``empty``          yes     yes    zero bytes
``header_only``    yes     -      the header line alone
``not_json``       -       yes    an HTML error page (served as 200)
``no_elements``    -       yes    ``{"data": [...]}``: the objects under another key
``bad_value``      yes     yes    the middle row's first money/integer cell (CSV) or the
                                  middle element's ``total``/``amount`` (JSON) becomes
                                  text that is not a number
=================  ======  =====  ======================================================
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import weakref
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commerce_sandbox.state import FileEntry, SandboxState

CSV_KINDS = ("ragged", "bom", "crlf", "lf", "invalid_utf8", "nul", "empty", "header_only", "bad_value")
JSON_KINDS = ("not_json", "no_elements", "bom", "invalid_utf8", "nul", "empty", "bad_value")
KINDS: tuple[str, ...] = tuple(dict.fromkeys(CSV_KINDS + JSON_KINDS))
#: Kinds that damage one row, so they wait for a file that has one.
ROW_KINDS = frozenset({"ragged", "invalid_utf8", "nul", "bad_value"})
#: Kinds a correct tap reads like the original file (same records).
HARMLESS = frozenset({"bom", "crlf", "lf"})

BAD_NUMBER = "twelve dollars"
INVALID_UTF8 = b"\xc3\x28"
ERROR_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>\n"


@dataclass
class Damage:
    """What one bad file is, exactly."""

    kind: str
    url_path: str
    file_format: str  # "csv" | "json"
    #: CSV: 1-based physical line where the damaged row starts; JSON: 0-based element index.
    line: int | None = None
    byte_offset: int | None = None
    #: Column as the file spells it, and as the snake_case property it stands for.
    header: str | None = None
    column: str | None = None
    value: Any = None
    #: Primary key of the damaged row / element (None if the kind damages no row).
    key: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.damaged: dict[str, str] = {}  # url path -> disk path of the damaged copy
        self.log: list[Damage] = []


_REGISTRIES: weakref.WeakKeyDictionary[SandboxState, _Registry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def _registry(state: SandboxState) -> _Registry:
    with _REGISTRIES_LOCK:
        reg = _REGISTRIES.get(state)
        if reg is None:
            reg = _REGISTRIES[state] = _Registry()
        return reg


def served(state: SandboxState) -> list[Damage]:
    """Every bad file made so far, oldest first."""
    reg = _registry(state)
    with reg.lock:
        return list(reg.log)


def validate_kind(kind: str | None) -> None:
    if kind is None:
        return
    for one in kind.split(","):
        if one.strip() not in KINDS:
            raise ValueError(
                f"fault_bad_file must be one of {', '.join(KINDS)}, a comma-separated list of them, or null"
            )


def file_to_serve(state: SandboxState, url_path: str, entry: FileEntry) -> str:
    """The disk path to serve for ``url_path``: its damaged copy if it has (or now gets) one.

    Called by the file host for every download it answers with the file.
    """
    reg = _registry(state)
    with reg.lock:
        done = reg.damaged.get(url_path)
        if done is not None:
            return done
        armed = state.config.fault_bad_file
        if armed is None or not state.fault_applies(url_path.split("/")[2]):
            return entry.path
        kind, _, rest = (k.strip() for k in armed.partition(","))
        file_format = "csv" if "csv" in entry.content_type else "json"
        if kind not in (CSV_KINDS if file_format == "csv" else JSON_KINDS):
            return entry.path
        with open(entry.path, "rb") as fh:
            original = fh.read()
        export_type = _export_type(state, url_path)
        damage = Damage(kind, url_path, file_format)
        if file_format == "csv":
            data = _damage_csv(original, kind, export_type, damage)
        else:
            data = _damage_json(original, kind, export_type, damage)
        if data is None:  # nothing to damage in this file (no rows): wait for the next
            return entry.path
        disk = entry.path + f".bad-{kind}"
        with open(disk, "wb") as out:
            out.write(data)
        reg.damaged[url_path] = disk
        reg.log.append(damage)
        with state.lock:
            state.config.fault_bad_file = rest or None  # one file per kind
    state.stats.incr("bad_files_served")
    return disk


def _export_type(state: SandboxState, url_path: str) -> str | None:
    with state.lock:
        for job in [*state.nc_exports.values(), *state.clover_exports.values()]:
            if url_path in job.files:
                return job.export_type
    return None


# --------------------------------------------------------------------------- CSV


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """(start line, cells) of every record, header included; lines are 1-based."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    last = 0
    for cells in reader:
        rows.append((last + 1, cells))
        last = reader.line_num
    return rows


def _write_csv(rows: list[list[str]], newline: str = "\r\n") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator=newline).writerows(rows)
    return out.getvalue().encode("utf-8")


def _damage_csv(original: bytes, kind: str, export_type: str | None, damage: Damage) -> bytes | None:
    from commerce_sandbox.csvgen import normalize_header

    if kind == "empty":
        return b""
    if kind == "bom":
        return b"\xef\xbb\xbf" + original
    text = original.decode("utf-8")
    rows = _csv_rows(text)
    if not rows:
        return None
    header = rows[0][1]
    cells = [r[1] for r in rows]
    if kind == "header_only":
        return _write_csv([header])
    if kind in ("crlf", "lf"):
        nl = "\r\n" if kind == "crlf" else "\n"
        fixed = [
            [c.replace("\r\n", "\n").replace("\r", "\n").replace("\n", nl) for c in row] for row in cells
        ]
        return _write_csv(fixed, nl)
    if len(rows) < 2:
        return None
    index = len(rows) // 2 if len(rows) > 2 else 1
    line, target = rows[index]
    names = [normalize_header(h) for h in header]
    damage.line = line
    damage.key = _csv_key(names, target, export_type)
    if kind == "ragged":
        damaged = list(target[:-1])
        damage.value = damaged
        cells[index] = damaged
        return _write_csv(cells)
    if kind == "bad_value":
        col = _numeric_column(export_type, names)
        damage.header, damage.column, damage.value = header[col], names[col], BAD_NUMBER
        cells[index] = [*target[:col], BAD_NUMBER, *target[col + 1 :]]
        return _write_csv(cells)
    # invalid_utf8 / nul: raw bytes at the start of the target row's first line
    data = _write_csv(cells)
    offset = _line_offset(data, line)
    damage.byte_offset = offset
    insert = INVALID_UTF8 if kind == "invalid_utf8" else b"\x00"
    return data[:offset] + insert + data[offset:]


def _line_offset(data: bytes, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        offset = data.index(b"\n", offset) + 1
    return offset


def _csv_key(names: list[str], row: list[str], export_type: str | None) -> Any:
    from commerce_sandbox.data_nextcommerce import key_column

    key = key_column(export_type) if export_type else ("number" if "number" in names else "id")
    if key not in names:
        return None
    value = row[names.index(key)]
    return value if key == "number" else int(value)


def _numeric_column(export_type: str | None, names: list[str]) -> int:
    """Index of the first money or integer column of the type (the key column if none)."""
    from commerce_sandbox.data_nextcommerce import SPECS

    if export_type in SPECS:
        for col in SPECS[export_type][0]:
            if col.kind in ("money", "int") and col.name in names:
                return names.index(col.name)
    return names.index("id") if "id" in names else 0


# --------------------------------------------------------------------------- JSON


def _damage_json(original: bytes, kind: str, export_type: str | None, damage: Damage) -> bytes | None:
    if kind == "empty":
        return b""
    if kind == "bom":
        return b"\xef\xbb\xbf" + original
    if kind == "not_json":
        return ERROR_PAGE
    document = json.loads(original)
    elements = document.get("elements") or []
    if kind == "no_elements":
        return json.dumps({"data": elements}, ensure_ascii=False).encode("utf-8")
    if not elements:
        return None
    index = len(elements) // 2
    element = elements[index]
    damage.line = index
    damage.key = element.get("id")
    if kind == "bad_value":
        field = next((f for f in ("total", "amount") if isinstance(element.get(f), int)), "createdTime")
        element[field] = BAD_NUMBER
        damage.column = damage.header = field
        damage.value = BAD_NUMBER
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    marker = "\u2063BAD\u2063"
    element["id"] = marker + str(element.get("id"))
    data = json.dumps(document, ensure_ascii=False).encode("utf-8")
    at = data.index(marker.encode("utf-8"))
    insert = INVALID_UTF8 if kind == "invalid_utf8" else b"\x00"
    damage.byte_offset = at
    return data[:at] + insert + data[at + len(marker.encode("utf-8")) :]


def cleanup(state: SandboxState) -> None:
    """Delete the damaged copies (they also go with the sandbox's temp dir)."""
    reg = _registry(state)
    with reg.lock:
        for disk in reg.damaged.values():
            try:
                os.remove(disk)
            except OSError:
                pass
        reg.damaged.clear()
