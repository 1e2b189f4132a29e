"""Singer BATCH output: a window's records as whole files the loader bulk-loads.

Why not the SDK's batchers (``singer_sdk.contrib.batch_encoder_jsonl`` / ``_parquet``):
they chunk a whole stream's records into files named by a fresh uuid, with no tie to
any bookmark, so a batched stream's state cannot be incremental (meltano/sdk#976);
the Parquet one builds each file in memory (``Table.from_pylist``),
writes through fsspec without fsync, and all of them give every stream map the same
files. Here the unit is the export WINDOW, the one thing the bookmark counts:

* each window's records (typed, selected and stream-mapped exactly like RECORD output)
  go into one file set per output stream, rotated every ``batch_size`` records, each file
  encoded streaming (memory stays flat at any export size);
* a file is written as a hidden ``.partial`` (mode 0600, ``O_EXCL``), fsync'd, then
  atomically renamed and its directory fsync'd: a name the loader can see is complete;
* each file is announced in a BATCH message (flushed) as soon as it is complete, so the
  loader loads it while the tap writes the next; the STATE that moves the bookmark
  comes only after the window's last file (the sync writes them in that order);
* names carry the stream, the account, the window and a per-run id: two runs or two
  accounts never collide, and the next run can tell which files a bookmark covers.

Deletion (the README states it): a file not finished when its window fails or is
interrupted is removed at once (the window is exported again). Announced files
are the loader's to read, possibly after this process has exited, so the tap keeps them;
the NEXT run removes those whose window ends at or before the bookmark it starts from,
because that bookmark comes back from the loader only after it loaded them.

What we reuse from the SDK: the ``batch_config`` setting and its shape, the BATCH message
shape (``encoding`` with ``format``/``compression``, ``manifest`` of ``file://`` URLs)
that SDK targets read with ``Sink.process_batch_files``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import msgspec

from tap_commerce_exports.errors import ConfigError

LOGGER = logging.getLogger("tap_commerce_exports.batch")

#: Records per file when ``batch_config.batch_size`` is not given. A file is what an SDK
#: target reads into memory at once (``process_batch_files`` makes a list of it) and
#: loads and merges in one go; it is announced as soon as it is complete, so the loader
#: loads it while the tap writes the next. Measured end to end into target-postgres
#: (200k orders): 25k-record files 1.24x faster than RECORD, 100k-record files 1.15x
#: (the loader waits longer for the first file), with the target validating nothing.
DEFAULT_BATCH_SIZE = 25_000
MAX_BATCH_SIZE = 10_000_000
#: Encoded bytes gathered before one compressor write (per file, not per record).
CHUNK = 1 << 16
#: gzip through ISA-L (``isal``, the igzip of Intel's ISA-L) at its level 1: standard
#: gzip that any reader opens, measured ~7x faster than zlib's fastest level here; zlib
#: level 1 alone cost ~4 us a record, more than the rest of the BATCH path. Plain
#: ``gzip`` is the fallback where ``isal`` has no build.
GZIP_LEVEL = 1
try:
    from isal.igzip import IGzipFile as _GzipFile
except ImportError:  # pragma: no cover - isal ships wheels for the usual platforms
    from gzip import GzipFile as _GzipFile  # type: ignore[assignment]
_STAMP = "%Y%m%dT%H%M%SZ"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class BatchSettings:
    """The parsed ``batch_config`` setting."""

    format: str  # "jsonl" or "parquet"
    compression: str | None  # "gzip" or None
    root: Path
    prefix: str
    batch_size: int

    @property
    def suffix(self) -> str:
        if self.format == "parquet":
            return ".parquet.gz" if self.compression == "gzip" else ".parquet"
        return ".jsonl.gz" if self.compression == "gzip" else ".jsonl"

    @property
    def encoding(self) -> dict[str, Any]:
        return {"format": self.format, "compression": self.compression or "none"}


def parse_batch_config(raw: Any) -> BatchSettings | None:
    """``batch_config`` as singer-sdk documents it, checked; None when not set."""
    if raw is None or raw == {} or raw == "":
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "setting 'batch_config' is not an object: give {encoding: {format, compression}, storage: {root, prefix}}"
        )
    unknown = sorted(set(raw) - {"encoding", "storage", "batch_size"})
    if unknown:
        raise ConfigError(
            f"setting 'batch_config' has unknown key(s) {', '.join(unknown)}: use encoding, storage, batch_size"
        )
    encoding = raw.get("encoding") or {}
    storage = raw.get("storage") or {}
    if not isinstance(encoding, Mapping) or not isinstance(storage, Mapping):
        raise ConfigError("setting 'batch_config': 'encoding' and 'storage' must be objects")
    fmt = str(encoding.get("format") or "jsonl").strip().lower()
    if fmt not in ("jsonl", "parquet"):
        raise ConfigError(f"setting 'batch_config.encoding.format' is '{fmt}': use jsonl or parquet")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ConfigError(
            "setting 'batch_config.encoding.format' is 'parquet', which needs pyarrow: "
            "install tap-commerce-exports[parquet], or use format 'jsonl'"
        )
    default_compression = "gzip" if fmt == "jsonl" else "none"
    compression = str(encoding.get("compression") or default_compression).strip().lower()
    if compression not in ("gzip", "none"):
        raise ConfigError(f"setting 'batch_config.encoding.compression' is '{compression}': use gzip or none")
    root_text = str(storage.get("root") or "").strip()
    if not root_text:
        raise ConfigError(
            "setting 'batch_config.storage.root' is missing: give a folder as a file:// URL, e.g. file:///var/batches"
        )
    root = _local_root(root_text)
    prefix = str(storage.get("prefix") or "")
    if "/" in prefix or "\\" in prefix or prefix.startswith("."):
        raise ConfigError(
            f"setting 'batch_config.storage.prefix' is '{prefix}': give a file-name prefix "
            "(no '/', not starting with '.'); put folders in 'root'"
        )
    size = raw.get("batch_size", DEFAULT_BATCH_SIZE)
    if isinstance(size, bool) or not isinstance(size, (int, float, str)):
        raise ConfigError(f"setting 'batch_config.batch_size' is '{size}': give a whole number of records")
    try:
        number = float(size)
    except ValueError:
        raise ConfigError(
            f"setting 'batch_config.batch_size' is '{size}': give a whole number of records"
        ) from None
    if not number.is_integer() or not 1 <= number <= MAX_BATCH_SIZE:
        raise ConfigError(
            f"setting 'batch_config.batch_size' is {size}: give a whole number from 1 to {MAX_BATCH_SIZE}"
        )
    return BatchSettings(
        format=fmt,
        compression=None if compression == "none" else compression,
        root=root,
        prefix=prefix,
        batch_size=int(number),
    )


def _local_root(text: str) -> Path:
    parts = urlsplit(text)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(
                f"setting 'batch_config.storage.root' is '{text}': give a local folder, file:///path"
            )
        path = Path(unquote(parts.path))
    elif parts.scheme == "" and text.startswith("/"):
        path = Path(text)
    else:
        raise ConfigError(
            f"setting 'batch_config.storage.root' is '{text}': only local folders are supported, "
            "as file:///absolute/path"
        )
    if not path.is_absolute():
        raise ConfigError(
            f"setting 'batch_config.storage.root' is '{text}': give an absolute path, file:///absolute/path"
        )
    return path


def parquet_refusal(stream: str, schema: Mapping[str, Any]) -> str | None:
    """Why Parquet cannot hold this output stream's records as RECORD messages carry
    them (None if it can): open JSON objects and arrays have no column type that an SDK
    target reads back as the same value."""
    for name, prop in (schema.get("properties") or {}).items():
        types = prop.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        if "object" in types or "array" in types or not types:
            return (
                f"batch_config format 'parquet' cannot hold stream '{stream}': property '{name}' "
                "is a JSON object/array; use format 'jsonl', or deselect that property"
            )
    return None


def instant_properties(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Top-level ``date-time`` properties: what BATCH files carry in UTC.

    Why UTC here and not in RECORD messages: a target parses a RECORD's date-times (and
    converts them), but loads batch files straight into its bulk path without parsing;
    PostgreSQL's COPY into a ``timestamp`` column then silently DROPS a non-UTC offset,
    shifting the instant (measured with target-postgres 0.8.1: ``...19:02:09-05:00``
    landed as 19:02:09, the RECORD path as 00:02:09). Same instant, same type, UTC text.
    """
    return tuple(
        name
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, Mapping) and prop.get("format") == "date-time"
    )


#: ``"+HH:MM"`` -> its timedelta, filled as offsets are met (a store has a few).
_OFFSETS: dict[str, timedelta] = {}


def utc_instant_converter(*, always: bool) -> Callable[[Any], Any]:
    """``value -> the same instant in UTC`` as an aware datetime (msgspec encodes it as
    ``...Z``; pyarrow as a UTC timestamp). ``always=False`` leaves UTC text (``Z``,
    ``+00:00``) as it is. Anything that does not parse (a stream map's own value) is
    returned unchanged.

    Why not ``fromisoformat(v).astimezone(utc).isoformat()``: measured 1.0 us a value,
    3 us a record on orders (more than the rest of the BATCH path); parsing the local
    part as UTC and subtracting the cached offset is 0.2 us and exact.
    """
    fromiso = datetime.fromisoformat
    offsets = _OFFSETS

    def to_utc(value: Any) -> Any:
        if type(value) is not str:
            return value
        tail = value[-6:]
        if not always and (value[-1:] in "Zz" or tail == "+00:00"):
            return value
        delta = offsets.get(tail)
        try:
            if delta is not None:
                return fromiso(value[:-6] + "+00:00") - delta
            moment = fromiso(value)
        except ValueError:
            return value
        offset = moment.utcoffset()
        if offset is None:
            return value
        if len(tail) == 6 and tail[0] in "+-" and tail[3] == ":":
            offsets[tail] = offset
        return moment.astimezone(timezone.utc)

    return to_utc


def _safe(text: str) -> str:
    return _UNSAFE.sub("_", text)[:80] or "_"


def new_run_id() -> str:
    """A per-run id: file names of two runs never collide (even of the same window)."""
    return uuid.uuid4().hex[:12]


def file_stem(settings: BatchSettings, stream: str, account: str, start: datetime, end: datetime) -> str:
    """``{prefix}{stream}.{account}.{start}-{end}`` (UTC stamps): what cleanup matches."""
    return (
        f"{settings.prefix}{_safe(stream)}.{_safe(account)}."
        f"{start.astimezone(timezone.utc).strftime(_STAMP)}-{end.astimezone(timezone.utc).strftime(_STAMP)}"
    )


# ------------------------------------------------------------------------- file writers


class _Encoder:
    """One open batch file of one format: ``write(record)``, ``finish()`` (no fsync)."""

    def write(self, record: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def finish(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _JsonlEncoder(_Encoder):
    """Raw records, one JSON object per line, encoded exactly like RECORD messages'
    ``record`` (msgspec, Decimal as an exact number), buffered, optionally gzip'd."""

    def __init__(self, raw: BinaryIO, compression: str | None) -> None:
        self._raw = raw
        self._gz = None
        if compression:
            self._gz = _GzipFile(  # type: ignore[no-untyped-call,unused-ignore]
                fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
            )
        self._sink: BinaryIO = self._gz if self._gz is not None else raw  # type: ignore[assignment]
        self._buf = bytearray()
        self._encode_into = msgspec.json.Encoder(decimal_format="number").encode_into

    def write(self, record: dict[str, Any]) -> None:
        buf = self._buf
        self._encode_into(record, buf, -1)
        buf.extend(b"\n")
        if len(buf) > CHUNK:
            self._sink.write(buf)
            buf.clear()

    def finish(self) -> None:
        if self._buf:
            self._sink.write(self._buf)
            self._buf.clear()
        if self._gz is not None:
            self._gz.close()  # writes the trailer; the raw file stays open


class _ParquetEncoder(_Encoder):
    """Row groups of ``CHUNK_ROWS`` records through one ``ParquetWriter`` (streaming),
    with columns typed from the output stream's JSON schema, not guessed per chunk."""

    CHUNK_ROWS = 10_000

    def __init__(self, raw: BinaryIO, compression: str | None, schema: Mapping[str, Any]) -> None:
        import pyarrow as pa  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,import-untyped,unused-ignore]

        self._pa = pa
        fields = []
        for name, prop in (schema.get("properties") or {}).items():
            types = prop.get("type", [])
            types = {types} if isinstance(types, str) else set(types)
            if "integer" in types:
                arrow = pa.int64()
            elif "number" in types:
                # Money is exact in RECORD messages (a JSON number from a Decimal): keep it
                # exact; 38 digits with 9 after the point hold any amount these APIs give.
                arrow = pa.decimal128(38, 9)
            elif "boolean" in types:
                arrow = pa.bool_()
            elif prop.get("format") == "date-time":
                arrow = pa.timestamp("us", tz="UTC")  # values arrive as UTC datetimes
            else:
                arrow = pa.string()
            fields.append(pa.field(name, arrow, nullable=True))
        self._schema = pa.schema(fields)
        self._names = [f.name for f in fields]
        self._rows: list[dict[str, Any]] = []
        self._writer = pq.ParquetWriter(raw, self._schema, compression="gzip" if compression else "snappy")

    def write(self, record: dict[str, Any]) -> None:
        self._rows.append(record)
        if len(self._rows) >= self.CHUNK_ROWS:
            self._flush_rows()

    def _flush_rows(self) -> None:
        if not self._rows:
            return
        table = self._pa.Table.from_pylist(self._rows, schema=self._schema)
        self._writer.write_table(table)
        self._rows = []

    def finish(self) -> None:
        self._flush_rows()
        self._writer.close()


# ------------------------------------------------------------------------- file sets


class BatchFileSet:
    """The files of ONE output stream for ONE window: written streaming, rotated every
    ``batch_size`` records, made visible only when complete, each announced (``announce``) at once.

    ``write`` is the per-record call; everything else happens once per file.
    """

    def __init__(
        self,
        settings: BatchSettings,
        *,
        stream: str,
        schema: Mapping[str, Any],
        account: str,
        start: datetime,
        end: datetime,
        run_id: str,
        announce: Callable[[str, list[str]], None],
        part: int = 0,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.schema = schema
        self._stem = f"{file_stem(settings, stream, account, start, end)}.{run_id}"
        self._part = part
        self._announce = announce
        self._partial: Path | None = None
        self._file: BinaryIO | None = None
        self._encoder: _Encoder | None = None
        self._in_file = 0
        self.records = 0
        self._instants = instant_properties(schema)
        self._to_utc = utc_instant_converter(always=settings.format == "parquet")
        self.write: WriteRecord = self._write_utc if self._instants else self._write

    @property
    def next_part(self) -> int:
        return self._part

    def _write_utc(self, record: dict[str, Any]) -> None:
        to_utc = self._to_utc
        for name in self._instants:
            value = record.get(name)
            if value is not None:
                record[name] = to_utc(value)
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        encoder = self._encoder
        if encoder is None:
            encoder = self._open()
        encoder.write(record)
        self._in_file += 1
        if self._in_file >= self.settings.batch_size:
            self._close_file()

    def _open(self) -> _Encoder:
        self._part += 1
        root = self.settings.root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = root / f"{self._stem}.{self._part:04d}{self.settings.suffix}"
        partial = root / f".{final.name}.partial"
        # O_EXCL: never write into someone else's file; 0600: only the owner reads it.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._partial = partial
        self._file = os.fdopen(fd, "wb", buffering=CHUNK)
        if self.settings.format == "parquet":
            self._encoder = _ParquetEncoder(self._file, self.settings.compression, self.schema)
        else:
            self._encoder = _JsonlEncoder(self._file, self.settings.compression)
        self._in_file = 0
        return self._encoder

    def _close_file(self) -> None:
        """Finish, fsync and atomically rename the open file (once per file)."""
        if self._encoder is None or self._file is None or self._partial is None:
            return
        self._encoder.finish()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._partial.with_name(self._partial.name[1 : -len(".partial")])
        os.replace(self._partial, final)
        _fsync_dir(final.parent)
        self.records += self._in_file
        self._encoder = self._file = self._partial = None
        self._in_file = 0
        self._announce(self.stream, [final.as_uri()])

    def complete(self) -> None:
        """Close (and so announce) the last file of the set."""
        self._close_file()

    def discard(self) -> None:
        """Remove the open, unannounced partial file (announced files are the loader's)."""
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
        if self._partial is not None:
            try:
                self._partial.unlink()
            except FileNotFoundError:
                pass
        self._encoder = self._file = self._partial = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- cleanup

_NAME = re.compile(
    r"\.(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)\.[0-9a-f]{12}\.\d{4,}\.(?:jsonl|parquet)(?:\.gz)?$"
)


def remove_loaded(settings: BatchSettings, stream: str, account: str, bookmark: datetime) -> int:
    """Remove this stream and account's batch files (and stale partials) whose window
    ends at or before ``bookmark``: the state holding that bookmark came back from the
    loader after it loaded them. Other streams', accounts' and prefixes' files stay."""
    root = settings.root
    if not root.is_dir():
        return 0
    head = f"{settings.prefix}{_safe(stream)}.{_safe(account)}"
    removed = 0
    for path in _candidates(root, head):
        name = path.name
        if name.startswith("."):
            name = name[1:].removesuffix(".partial")
        match = _NAME.fullmatch(name[len(head) :])
        if match is None:
            continue
        end = datetime.strptime(match["end"], _STAMP).replace(tzinfo=timezone.utc)
        if end <= bookmark:
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    if removed:
        LOGGER.info(
            "stream '%s': removed %d batch file(s) the loader already took (up to the bookmark)",
            stream,
            removed,
        )
    return removed


def _candidates(root: Path, head: str) -> Iterable[Path]:
    for entry in os.scandir(root):
        name = entry.name
        if (name.startswith(head + ".") or name.startswith("." + head + ".")) and entry.is_file(
            follow_symlinks=False
        ):
            yield Path(entry.path)


WriteRecord = Callable[[dict[str, Any]], None]
