"""How a finished window's records leave the tap: RECORD messages, BATCH files, or (on
singer-sdk's per-stream path) yielded to the SDK, behind one :class:`Emitter` interface.

The sync hands each ready window to ``emit`` in window order and writes the window's
STATE after it returns, whichever emitter it is, so the bookmark rule stays in one place
(``singer/sync.py``). Every emitter reads a window the same way (``records``: the
window's files through ``files/window_reader.py``, each record stamped with its account
there, once), shapes records the same way (selection, then stream maps:
``record_sink.py``) and announces a file's new columns with a SCHEMA before the first
record that carries them.

BATCH mode, chosen once per run: every file is announced (BATCH message, flushed) as
soon as it is complete, a new SCHEMA first closes and announces the files before it, and
a window that fails removes only its unfinished file (the files: ``singer/batch/``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tap_commerce_exports.errors import ConfigError, InvalidRecord
from tap_commerce_exports.files import WindowFilter
from tap_commerce_exports.files.reader_base import ExportFileReader
from tap_commerce_exports.files.window_reader import WindowFiles, WindowReader
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY, with_account
from tap_commerce_exports.singer.batch.cleanup import remove_loaded
from tap_commerce_exports.singer.batch.columnar import write_file_columns
from tap_commerce_exports.singer.batch.encoders import parquet_refusal
from tap_commerce_exports.singer.batch.file_set import BatchFileSet
from tap_commerce_exports.singer.batch.naming import RUN_ID, check_distinct, new_run_id
from tap_commerce_exports.singer.batch.root import check_root
from tap_commerce_exports.singer.bookmarks import partition_of, read_bookmark
from tap_commerce_exports.singer.file_facts import FileFacts
from tap_commerce_exports.singer.record_sink import RecordWriter, is_plain, output_maps, record_sink
from tap_commerce_exports.singer.selection import selected_schema

if TYPE_CHECKING:
    from singer_sdk.mapper import PluginMapper

    from tap_commerce_exports.config.batch import BatchSettings
    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.jobs.job import ExportJob
    from tap_commerce_exports.providers.base import ProviderFacts
    from tap_commerce_exports.singer.host import SyncStream
    from tap_commerce_exports.singer.output import SingerOutput

LOGGER = logging.getLogger("tap_commerce_exports.sync")


@dataclass
class StreamProgress:
    """One stream of the run: the readers' schema (widened by files' new columns, the
    account property left to the emitters) and its records so far."""

    stream: SyncStream
    schema: dict[str, Any]
    records: int = 0
    #: Property paths the catalog deselected (``singer/selection.py``).
    deselected: tuple[tuple[str, ...], ...] = ()


class Emitter:
    """Writes (or yields) one finished window's records; see the module docstring."""

    def __init__(
        self,
        output: SingerOutput,
        mapper: PluginMapper,
        settings: Settings,
        facts: ProviderFacts,
        on_invalid: Callable[[InvalidRecord], None],
    ) -> None:
        self.output = output
        self.mapper = mapper
        self.settings = settings
        self.facts = facts
        self.reader = WindowReader(facts.file_reader, on_invalid, facts.files_add_columns)
        #: Per account, its files' zone and metadata types (None: nothing known).
        self.file_facts: FileFacts | None = None

    def prepare(self, streams: Sequence[SyncStream], accounts: Iterable[str], state: dict[str, Any]) -> None:
        """Once the streams' maps are registered and the windows planned."""

    def emit(self, job: ExportJob, p: StreamProgress, account: str) -> Iterable[dict[str, Any]] | None:
        """The window's records written (None), or yielded to a caller that writes them."""
        raise NotImplementedError

    def bookmarked(self, state: dict[str, Any], stream: str, account: str) -> None:
        """The bookmark of ``stream`` of ``account`` moved (after the window's output)."""

    def announce(self, p: StreamProgress) -> None:
        """The stream's SCHEMA (selected, with the account property) for every output
        stream map; a Parquet batch refuses a stream it cannot hold before any output."""
        stream = p.stream
        schema = with_account(selected_schema(p.schema, p.deselected) if p.deselected else p.schema)
        self.mapper.register_raw_stream_schema(stream.name, schema, stream.primary_keys)
        batch = self.settings.batch
        for stream_map in output_maps(self.mapper, stream.name):
            if batch is not None and batch.format == "parquet":
                refusal = parquet_refusal(stream_map.stream_alias, stream_map.transformed_schema)
                if refusal:  # before any output is flushed: the run writes nothing
                    raise ConfigError(refusal)
            self.output.schema(
                stream_map.stream_alias,
                stream_map.transformed_schema,
                stream_map.transformed_key_properties or [],
                # as the SDK's own SCHEMA messages: the replication key (the window field)
                [stream.definition.window_field],
            )

    def records(
        self,
        job: ExportJob,
        p: StreamProgress,
        account: str,
        on_new_columns: Callable[[], None] | None,
        take_file: Callable[[ExportFileReader], bool] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The window's typed records, each stamped with ``account`` (after its reader: a
        file's value never wins), ``p.schema`` widened by files' new columns."""
        known = self.file_facts
        files = WindowFiles(
            stream=p.stream.name,
            label=job.label,
            export_id=job.export_id,
            paths=job.files,
            window=self._window_filter(job),
            primary_keys=job.stream.primary_keys,
            key_columns=job.stream.key_columns(self.settings.key_columns.get(job.stream.name)),
            naive_timezone=known.zone(account) if known else None,
            column_types=known.column_types(account, p.stream.name) if known else {},
        )
        return self.reader.records(files, p, (ACCOUNT_PROPERTY, account), on_new_columns, take_file)

    def _window_filter(self, job: ExportJob) -> WindowFilter:
        """The job's window, and where a file may keep each row's window instant: the
        column named by ``window_columns`` if set, else every name the stream's window
        field may have (the provider's table)."""
        definition = job.stream
        override = self.settings.window_columns.get(definition.name)
        names = (override,) if override else definition.window_field_names
        value = self.facts.window_value  # how its files write instants
        return WindowFilter(definition.window_field, value(job.window.start), value(job.window.end), names)

    def _sink(self, p: StreamProgress, writers: Sequence[RecordWriter]) -> RecordWriter:
        """Selection, then each output stream map, into its writer."""
        maps = output_maps(self.mapper, p.stream.name)
        return record_sink(p.deselected, list(zip(maps, writers, strict=True)))


class RecordEmitter(Emitter):
    """RECORD messages into the run's output (the CLI's path)."""

    def emit(self, job: ExportJob, p: StreamProgress, account: str) -> None:
        time_extracted = datetime.now(timezone.utc).isoformat()
        write = self._record_sink(p, time_extracted)

        def new_columns() -> None:
            nonlocal write
            self.announce(p)
            write = self._record_sink(p, time_extracted)

        before = p.records
        for record in self.records(job, p, account, new_columns):  # hot loop: one call per record
            write(record)
        LOGGER.debug("%s: %d records written", job.label, p.records - before)

    def _record_sink(self, p: StreamProgress, time_extracted: str) -> RecordWriter:
        maps = output_maps(self.mapper, p.stream.name)
        return self._sink(p, [self.output.record_writer(m.stream_alias, time_extracted) for m in maps])


class YieldingEmitter(Emitter):
    """singer-sdk's per-stream path: records yielded to the SDK, which writes them.

    The SDK writes each record as it gets it (and flushes), while this layer buffers its
    own messages: a SCHEMA announcing a file's new columns is flushed at once, so that it
    reaches the target before the first record that carries them."""

    def emit(self, job: ExportJob, p: StreamProgress, account: str) -> Iterator[dict[str, Any]]:
        def new_columns() -> None:
            p.stream.widen_schema(p.schema)  # the SDK conforms records to the stream's schema
            self.announce(p)  # registers the maps, announces the columns (as RECORD output does)
            self.output.flush()

        return self.records(job, p, account, new_columns)


class BatchEmitter(Emitter):
    """BATCH files instead of RECORD messages (one run id names all the run's files)."""

    def __init__(self, *args: Any, batch: BatchSettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch = batch
        self.run_id = new_run_id()
        #: This pipeline's id (kept in the STATE, in every file name): what clean-up may touch.
        self.pipeline = new_run_id()

    def prepare(self, streams: Sequence[SyncStream], accounts: Iterable[str], state: dict[str, Any]) -> None:
        """The root checked (ours), the names checked (distinct), then the batch files of
        earlier runs of this pipeline that the incoming bookmark proves loaded removed."""
        check_root(self.batch)
        pairs = [
            (s, m.stream_alias, a)
            for s in streams
            for m in output_maps(self.mapper, s.name)
            for a in accounts
        ]
        check_distinct(self.batch, ((alias, a) for _, alias, a in pairs))
        marks = [partition_of(state, s.name, a) or {} for s, _, a in pairs]
        known = [m["batch_pipeline"] for m in marks if isinstance(m.get("batch_pipeline"), str)]
        self.pipeline = next((k for k in known if RUN_ID.match(k)), self.pipeline)
        for (stream, alias, account), mark in zip(pairs, marks, strict=True):
            bookmark = read_bookmark(state, stream.name, account)
            if bookmark is not None and mark.get("batch_pipeline") == self.pipeline:
                remove_loaded(self.batch, alias, account, bookmark, self.pipeline)

    def bookmarked(self, state: dict[str, Any], stream: str, account: str) -> None:
        """The bookmark of ``stream`` of ``account`` moved: its entry names this pipeline."""
        partition = partition_of(state, stream, account)
        if partition is not None:
            partition["batch_pipeline"] = self.pipeline

    def emit(self, job: ExportJob, p: StreamProgress, account: str) -> None:
        """The window's records into one file set per output stream, each file announced
        by a BATCH message once complete; the caller writes the STATE after the last. A
        file not complete when the window fails is removed; see singer/batch/."""
        batch = self.batch
        sets: list[BatchFileSet] = []
        parts: dict[str, int] = {}

        def announce(stream: str, manifest: list[str]) -> None:
            # Each file as soon as it is complete, flushed: the loader loads it while
            # the next one is written. The STATE comes after the window's last.
            self.output.batch(stream, batch.encoding, manifest)
            self.output.flush()

        def open_sets() -> RecordWriter:
            sets[:] = [
                BatchFileSet(
                    batch,
                    stream=m.stream_alias,
                    schema=m.transformed_schema,
                    account=account,
                    start=job.window.start,
                    end=job.window.end,
                    run_id=f"{self.pipeline}-{self.run_id}",
                    announce=announce,
                    part=parts.get(m.stream_alias, 0),
                )
                for m in output_maps(self.mapper, p.stream.name)
            ]
            return self._sink(p, [s.write for s in sets])

        def complete() -> None:
            for file_set in sets:
                file_set.complete()
                parts[file_set.stream] = file_set.next_part

        write = open_sets()

        def new_columns() -> None:
            # The SCHEMA that adds columns must precede the files that carry them.
            nonlocal write
            complete()
            self.announce(p)
            write = open_sets()

        def take_file(reader: ExportFileReader) -> bool:
            # The columnar path: a file's blocks of typed columns into the one file
            # set, when Parquet files take the records unchanged (one plain output
            # stream: no stream map, no flattening; a deselected property is simply not
            # a column). False: the rows the blocks did not take follow as records.
            taken = write_file_columns(reader, sets[0], (ACCOUNT_PROPERTY, account))
            how = (
                "as typed columns"
                if taken
                else f"as typed columns up to row {reader.skip_rows}, then row by row"
            )
            LOGGER.debug("%s: %s read %s", job.label, reader.file_label, how)
            return taken

        maps = output_maps(self.mapper, p.stream.name)
        columnar = batch.format == "parquet" and len(maps) == 1 and is_plain(maps[0])
        try:
            for record in self.records(
                job, p, account, new_columns, take_file if columnar else None
            ):  # hot loop: one call per record
                write(record)
            complete()
        except BaseException:
            for file_set in sets:
                file_set.discard()
            raise
