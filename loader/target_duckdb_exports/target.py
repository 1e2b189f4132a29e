"""The SDK Target: settings, ``--about``, and when a STATE is confirmed.

A STATE message is confirmed (written to stdout, where Meltano saves it) only after every
row that came before it is committed. The loader drains at each STATE that follows data:
all sinks load what they hold (one transaction each), then the STATE is written. A STATE
that follows no new data covers only committed rows and is confirmed at once -- so a
pipeline killed while the tap waits for its exports still keeps the exports the tap
recorded in that STATE.
"""

from __future__ import annotations

import copy
import decimal
import typing as t
from collections import Counter
from pathlib import PurePath

import msgspec
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_duckdb_exports.sink import DuckDBSink
from target_duckdb_exports.warehouse import DEFAULT_ROW_GROUP_SIZE, Warehouse

#: The loader's own settings (README: "The DuckDB loader"); the SDK adds its built-ins.
SETTINGS: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "path",
        th.StringType,
        required=True,
        title="DuckDB file",
        description="The DuckDB database file to load into (created if missing).",
    ),
    th.Property(
        "default_target_schema",
        th.StringType,
        default="main",
        title="Schema",
        description="Schema that receives the tables (created if missing).",
    ),
    th.Property(
        "number_scale",
        th.IntegerType,
        default=9,
        title="Digits after the point",
        description=(
            "Digits kept after the decimal point in columns of JSON type 'number' (DECIMAL(38, "
            "scale); a property's own 'multipleOf' such as 0.01 sets its scale instead)."
        ),
    ),
    th.Property(
        "validate_records",
        th.BooleanType,
        default=False,
        title="Validate records",
        description=(
            "Validate every record against its schema before loading (off by default: each "
            "column has its schema's type, and DuckDB refuses a value that does not fit it)."
        ),
    ),
    th.Property(
        "row_group_size",
        th.IntegerType,
        default=DEFAULT_ROW_GROUP_SIZE,
        title="Rows per row group",
        description=(
            "Rows per row group DuckDB writes into the file (ATTACH option ROW_GROUP_SIZE; a "
            "multiple of 2048; DuckDB's own default is 122880). Smaller groups are compressed "
            "and written while the files arrive instead of at the commit: with 16384, the "
            "commit after 200,000 rows takes about 0.15 s instead of 0.5 s, for no more work in "
            "all and a file a sixth larger. The file stays an ordinary DuckDB file."
        ),
    ),
    th.Property(
        "temp_dir",
        th.StringType,
        title="Buffer folder",
        description="Folder for the files that buffer RECORD messages between drains (default: the system's).",
    ),
).to_dict()


#: How a compact RECORD line starts (the tap's, and any writer's that puts "type" first).
RECORD_PREFIX = b'{"type":"RECORD","stream":"'


class MsgspecReader(SimpleSingerReader):
    """Input lines decoded by msgspec, numbers with a fraction as exact ``Decimal``.

    The SDK's reader uses the standard library's ``json`` with the same ``Decimal`` rule:
    same values, several times the CPU per line. ``take_record_line``, when the target
    sets it, is offered each compact RECORD line first, as the bytes that came (read from
    the input's binary buffer: never decoded to text and encoded back): DuckDB decodes it."""

    _decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
    take_record_line: t.Callable[[bytes], bool] | None = None

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, t.Callable[[dict[str, t.Any]], None]]
    ) -> t.Counter[str]:
        take = self.take_record_line
        if take is None:
            return super().process_lines(file_input, callbacks)
        stats: t.Counter[str] = Counter()
        raw = 0
        decode = self.deserialize_json
        source = file_input or self.default_input
        binary = getattr(source, "buffer", None)
        lines: t.Iterable[bytes] = binary if binary is not None else (text.encode() for text in source)
        for data in lines:
            if data.startswith(RECORD_PREFIX) and take(data):
                raw += 1
                continue
            try:
                line = data.decode()
            except UnicodeDecodeError as exc:
                raise InvalidInputLine(f"a line of input is not UTF-8 ({exc}): {data[:200]!r}") from None
            self._current_message = line
            message = decode(line)
            self.assert_line_requires(message, requires={"type"})
            kind = message["type"]
            callback = callbacks.get(kind)
            if callback is not None:
                callback(message)
            else:
                self._process_unknown_message(message)
            stats[kind] += 1
        stats["RECORD"] += raw
        return stats

    def deserialize_json(self, line: str) -> dict[str, t.Any]:
        try:
            value = self._decode(line)
        except msgspec.DecodeError as exc:
            raise InvalidInputLine(f"a line of input is not JSON ({exc}): {line[:200]!r}") from None
        if not isinstance(value, dict):
            raise InvalidInputLine(f"a line of input is not a JSON object: {line[:200]!r}")
        return value


class TargetDuckDBExports(Target):
    """Singer loader for DuckDB: BATCH files read by DuckDB itself, upserts by key."""

    name = "target-duckdb-exports"
    default_sink_class = DuckDBSink
    message_reader_class = MsgspecReader

    #: A copy: the SDK adds its built-in settings to this dict in place.
    config_jsonschema = copy.deepcopy(SETTINGS)

    def __init__(
        self,
        *,
        config: dict[str, t.Any] | PurePath | str | list[PurePath | str] | None = None,
        parse_env_config: bool = False,
        validate_config: bool = True,
        setup_mapper: bool = True,
    ) -> None:
        super().__init__(
            config=config,
            parse_env_config=parse_env_config,
            validate_config=validate_config,
            setup_mapper=setup_mapper,
        )
        # One DuckDB connection, one writer: sinks drain one after another.
        self.max_parallelism = 1
        self._warehouse: Warehouse | None = None
        self._confirmed: t.Any = None
        self._direct_records: bool | None = None
        self._records_since_check = 0
        if isinstance(self.message_reader, MsgspecReader):
            self.message_reader.take_record_line = self._take_record_line

    @property
    def warehouse(self) -> Warehouse:
        """The DuckDB file, opened on first use (``--about`` never opens it)."""
        if self._warehouse is None:
            size = self.config.get("row_group_size", DEFAULT_ROW_GROUP_SIZE)
            self._warehouse = Warehouse(
                str(self.config["path"]), self.logger, int(size) if size is not None else None
            )
        return self._warehouse

    @property
    def _direct(self) -> bool:
        """Records go straight to their sink's buffer: no stream map, flattening,
        validation or metadata asks the SDK to look at each record first."""
        if self._direct_records is None:
            config = self.config
            self._direct_records = not (
                config.get("stream_maps")
                or config.get("flattening_enabled")
                or config.get("validate_records")
                or config.get("add_record_metadata")
            )
        return self._direct_records

    def _take_record_line(self, line: bytes) -> bool:
        """A RECORD line straight into its sink's buffer, not decoded here (DuckDB reads
        the row from the line's "record"); False sends it the ordinary way: a setting
        that needs each record, a stream without a sink yet, a key property missing."""
        if not self._direct:
            return False
        start = len(RECORD_PREFIX)
        end = line.find(b'"', start)
        stream = line[start:end]
        sink = (
            self._sinks_active.get(stream.decode(errors="replace"))
            if end > 0 and b"\\" not in stream
            else None
        )
        if not isinstance(sink, DuckDBSink) or not sink.take_line(line):
            return False
        if sink.is_full_now():
            self.drain_one(sink)
        self._records_since_check += 1
        if self._records_since_check >= 10_000:
            self._records_since_check = 0
            self._handle_max_record_age()
        return True

    def _after_record(self, sink: DuckDBSink) -> None:
        sink.tally_record_read()
        if sink.is_full:
            self.drain_one(sink)
        self._records_since_check += 1
        if self._records_since_check >= 10_000:
            self._records_since_check = 0
            self._handle_max_record_age()

    def _process_record_message(self, message_dict: dict[str, t.Any]) -> None:
        """RECORD -> the sink's buffer file, with nothing in between unless a setting asks
        for it (the SDK's path copies, maps and parses every record: most of the CPU a
        record costs). Date-times stay text: DuckDB reads them into TIMESTAMPTZ columns."""
        if not self._direct:
            super()._process_record_message(message_dict)
            return
        self._assert_line_requires(message_dict, requires={"stream", "record"})
        stream = message_dict["stream"]
        self._assert_sink_exists(stream)
        sink = self._sinks_active[stream]
        record = message_dict["record"]
        sink._singer_validate_message(record)  # every key property is there
        sink.process_record(record, {})
        assert isinstance(sink, DuckDBSink)
        self._after_record(sink)

    def _pending(self) -> bool:
        sinks = [*self._sinks_active.values(), *self._sinks_to_clear]
        return any(sink.current_size for sink in sinks)

    def _process_state_message(self, message_dict: dict[str, t.Any]) -> None:
        """Drain at each STATE that follows data; confirm it once that data is committed."""
        self._assert_line_requires(message_dict, requires={"value"})
        self._latest_state = message_dict["value"]
        if self._pending():
            self.drain_all()  # loads every sink, then writes _latest_state
        else:
            self._write_state_message(copy.deepcopy(message_dict["value"]))

    def _write_state_message(self, state: dict[str, t.Any]) -> None:
        """Each distinct STATE once (a drain at the end re-offers the last one)."""
        if state == self._confirmed:
            return
        self._confirmed = copy.deepcopy(state)
        super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        try:
            super().process_endofpipe()
        finally:
            if self._warehouse is not None:
                self._warehouse.close()
                self._warehouse = None
