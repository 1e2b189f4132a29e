"""Singer BATCH output: a window's records as whole files the loader bulk-loads.

Why not the SDK's batchers (``singer_sdk.contrib.batch_encoder_jsonl`` / ``_parquet``):
they chunk a stream's records into files named by a fresh uuid per stream and announce
each file as soon as it is written, so a bookmark cannot say which files it covers
(meltano/sdk#976); the Parquet one builds each file in memory (``Table.from_pylist``),
writes through fsspec without fsync, and all of them give every stream map the same
files. Here the unit is the export WINDOW, the one thing the bookmark counts:

* each window's records (typed, selected and stream-mapped exactly like RECORD output)
  go into one file set per output stream, rotated every ``batch_size`` records, each file
  encoded streaming (memory stays flat at any export size);
* a file is written as a hidden ``.partial`` (mode 0600, ``O_EXCL``), fsync'd, then
  atomically renamed and its directory fsync'd: a name the loader can see is complete;
* the set is announced in ONE BATCH message per output stream when the window is done,
  BEFORE the STATE that moves the bookmark (the sync writes both, in that order);
* names carry the stream, the account, the window and a per-run id: two runs or two
  accounts never collide, and the next run can tell which files a bookmark covers.

Deletion (the README states it): files of a window that failed or was interrupted before
it was announced are removed at once (their window is exported again). Announced files
are the loader's to read, possibly after this process has exited, so the tap keeps them;
the NEXT run removes those whose window ends at or before the bookmark it starts from,
because that bookmark comes back from the loader only after it loaded them.

What we reuse from the SDK: the ``batch_config`` setting and its shape, the BATCH message
shape (``encoding`` with ``format``/``compression``, ``manifest`` of ``file://`` URLs)
that SDK targets read with ``Sink.process_batch_files``.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import msgspec

from tap_commerce_exports.errors import ConfigError

LOGGER = logging.getLogger("tap_commerce_exports.batch")

#: Records per file when ``batch_config.batch_size`` is not given: a file is what an SDK
#: target reads into memory at once (``process_batch_files`` makes a list of it), and
#: what target-postgres COPYs and merges in one go.
DEFAULT_BATCH_SIZE = 100_000
MAX_BATCH_SIZE = 10_000_000
#: Encoded bytes gathered before one compressor write (per file, not per record).
CHUNK = 1 << 16
#: zlib level 1: measured here the cheapest level that keeps the tap's CPU per record in
#: BATCH mode below RECORD mode; the files still shrink ~5x.
GZIP_LEVEL = 1
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
        self._gz = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) if compression else None
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
        import pyarrow as pa  # type: ignore[import-not-found]
        import pyarrow.parquet as pq  # type: ignore[import-not-found]

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
    ``batch_size`` records, made visible only when complete, announced by the caller.

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
        part: int = 0,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.schema = schema
        self._stem = f"{file_stem(settings, stream, account, start, end)}.{run_id}"
        self._part = part
        self.done: list[Path] = []  # complete files (renamed), not yet announced
        self._partial: Path | None = None
        self._file: BinaryIO | None = None
        self._encoder: _Encoder | None = None
        self._in_file = 0
        self.records = 0

    @property
    def next_part(self) -> int:
        return self._part

    def write(self, record: dict[str, Any]) -> None:
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
        self.done.append(final)
        self.records += self._in_file
        self._encoder = self._file = self._partial = None
        self._in_file = 0

    def complete(self) -> list[str]:
        """Close the last file; the manifest (``file://`` URLs) of every complete file."""
        self._close_file()
        manifest = [path.as_uri() for path in self.done]
        self.done = []
        return manifest

    def discard(self) -> None:
        """Remove the open partial file and the complete, unannounced files."""
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
        for path in [self._partial, *self.done]:
            if path is not None:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        self._encoder = self._file = self._partial = None
        self.done = []


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------- cleanup

_NAME = re.compile(
    r"\.(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)\.[0-9a-f]{12}\.\d{4}\.(?:jsonl|parquet)(?:\.gz)?$"
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
