"""The sync: plan windows from state, run all exports through the engine, emit records.

Guarantees kept here:
* Records of a stream are emitted window by window, in window order.
* The bookmark moves to a window's end only after ALL its records were written, and the
  STATE message flushes them first; a failed or interrupted window leaves it where it was.
* An export is saved in STATE (flushed) as soon as it exists, the bookmark unmoved, so
  a rerun after a kill follows it instead of creating another and waiting from zero.
* A stream that fails (export failed, timed out, unreadable file, invalid record with
  ``on_invalid_record: fail``) stops; other streams go on; the run then exits non-zero.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from tap_commerce_exports.errors import (
    AccountsFailed,
    ConfigError,
    ExportFailed,
    InvalidFile,
    InvalidRecord,
    MissingWindowColumn,
    UserError,
    account_failure_line,
)
from tap_commerce_exports.files import WindowFilter
from tap_commerce_exports.files.window import WINDOW_COLUMN_SCHEMA
from tap_commerce_exports.http.download import FileDownloader, download_limits
from tap_commerce_exports.http.metrics import record_count, sync_duration
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.orchestrator import ExportOrchestrator
from tap_commerce_exports.providers.registry import build_providers
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY, with_account, without_account
from tap_commerce_exports.singer.batch import parquet_refusal
from tap_commerce_exports.singer.output import SingerOutput
from tap_commerce_exports.singer.record_sink import RecordWriter, output_maps, record_sink
from tap_commerce_exports.singer.rejects import RejectsLog, fail_on_invalid
from tap_commerce_exports.singer.selection import deselected_paths, selected_schema
from tap_commerce_exports.state import (
    SavedExport,
    read_bookmark,
    read_exports,
    snapshot,
    write_bookmark,
    write_exports,
)
from tap_commerce_exports.windows import Window, iso_z, plan_windows

if TYPE_CHECKING:
    from tap_commerce_exports.providers.base import ExportProvider
    from tap_commerce_exports.settings import Settings
    from tap_commerce_exports.singer.streams import ExportStream
    from tap_commerce_exports.tap import TapCommerceExports

LOGGER = logging.getLogger("tap_commerce_exports.sync")
#: What :meth:`ExportSync.sync` hands a ready window to: writes its records (returns
#: None) or yields them to a caller that writes them itself (singer-sdk's path).
Emit = Callable[[ExportJob, "StreamProgress"], "Iterable[dict[str, Any]] | None"]
UNKNOWN_COLUMN_SCHEMA = {"type": ["string", "null"]}


@dataclass
class StreamProgress:
    stream: ExportStream
    schema: dict[str, Any]
    records: int = 0
    error: BaseException | None = None
    #: Property paths the catalog deselected (``singer/selection.py``).
    deselected: tuple[tuple[str, ...], ...] = ()


class ExportSync:
    """One run of the tap over its selected streams."""

    def __init__(
        self,
        tap: TapCommerceExports,
        settings: Settings,
        output: SingerOutput | None = None,
        provider: ExportProvider | None = None,
    ) -> None:
        self.tap = tap
        self.settings = settings
        self.output = output or SingerOutput()
        #: account -> its provider (own API client and per-token limiter; one app limiter)
        self.providers: dict[str, ExportProvider] = (
            {provider.account: provider} if provider is not None else build_providers(settings)
        )
        #: The first account's provider: THE provider of a single-account run.
        self.provider = next(iter(self.providers.values()))
        #: account -> its settings (where it was given, for the lines naming it)
        self.accounts = {a.account: a for a in settings.all_accounts}
        #: account -> the error that stopped it (bad token, unknown merchant...)
        self.failed_accounts: dict[str, BaseException] = {}
        #: (stream, account) -> the error that stopped that stream of that account
        self.failed_pairs: dict[tuple[str, str], BaseException] = {}
        self.on_invalid: Callable[[InvalidRecord], None] = fail_on_invalid
        self.rejects: RejectsLog | None = None
        if settings.on_invalid_record == "log":
            self.rejects = RejectsLog(settings.rejects_dir)
            self.on_invalid = self.rejects
        self.orchestrator: ExportOrchestrator | None = None
        #: (stream, account) -> seconds from the sync's start to its last window emitted
        self.finished_at: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------------ planning
    @property
    def many(self) -> bool:
        """Whether this run reads several accounts (jobs then name theirs)."""
        return len(self.providers) > 1

    def account_of(self, job: ExportJob) -> str:
        """The account whose records ``job`` brings ("" on a job: the only one)."""
        return job.account or self.provider.account

    @property
    def state(self) -> dict[str, Any]:
        """The tap's state. The SDK types it as a TypedDict of its own keys; what this layer
        reads and writes in it is ours (``state.py``), through a plain dict's interface."""
        return cast("dict[str, Any]", self.tap.state)

    def plan(self, streams: list[ExportStream]) -> list[ExportJob]:
        """Every account's windows of every stream, from that (stream, account)'s state."""
        jobs: list[ExportJob] = []
        for account in self.providers:
            jobs += self._plan_account(streams, account)
        return jobs

    def _plan_account(self, streams: list[ExportStream], account: str) -> list[ExportJob]:
        jobs: list[ExportJob] = []
        of = f" of '{account}'" if self.many else ""
        for stream in streams:
            start = self.settings.start_date
            bookmark = read_bookmark(self.state, stream.name, account)
            if bookmark is not None:
                start = max(start, bookmark - self.settings.lookback)
            windows = plan_windows(start, self.settings.end_date, self.settings.window)
            if not windows:
                LOGGER.info(
                    "stream '%s'%s is up to date (bookmark %s)",
                    stream.name,
                    of,
                    iso_z(bookmark) if bookmark else "-",
                )
            else:
                LOGGER.info(
                    "stream '%s'%s: %d window(s) from %s to %s",
                    stream.name,
                    of,
                    len(windows),
                    iso_z(windows[0].start),
                    iso_z(windows[-1].end),
                )
            saved = {
                (e.window_start, e.window_end): e for e in read_exports(self.state, stream.name, account)
            }
            for i, w in enumerate(windows):
                job = ExportJob(
                    stream=stream.definition, window=w, seq=i, account=account if self.many else ""
                )
                match = saved.pop((w.start, w.end), None)
                if match is not None:
                    job.adopt_id, job.adopt_created_at = match.export_id, match.created_at
                jobs.append(job)
            if saved:
                LOGGER.info(
                    "stream '%s'%s: %d export(s) saved by the last run match no window planned now "
                    "(the windows changed); left alone",
                    stream.name,
                    of,
                    len(saved),
                )
        return jobs

    def _save_exports(self, names: list[str], besides: ExportJob | None = None) -> None:
        """Put the exports in flight (all but ``besides``, just emitted) into the state."""
        assert self.orchestrator is not None
        by_pair: dict[tuple[str, str], list[SavedExport]] = {
            (n, a): [] for n in names for a in self.providers
        }
        for job in self.orchestrator.exports_in_flight(besides=besides):
            assert job.export_id is not None
            by_pair.setdefault((job.stream.name, self.account_of(job)), []).append(
                SavedExport(job.export_id, job.window.start, job.window.end, job.created_wall)
            )
        for (name, account), exports in by_pair.items():
            write_exports(self.state, name, account, exports)

    def _orchestrator(self, workdir: Path, *, webhook_active: bool) -> ExportOrchestrator:
        return ExportOrchestrator(
            self.providers if self.many else self.provider,
            workdir=workdir,
            max_concurrent_exports=self.settings.max_concurrent_exports,
            max_concurrent_total=self.settings.max_concurrent_exports_total,
            poll_interval=self.settings.poll_interval,
            poll_max_interval=self.settings.poll_max_interval,
            export_timeout=self.settings.export_timeout,
            outside_hours=self.settings.outside_hours,
            webhook_active=webhook_active,
            downloader=FileDownloader(limits=download_limits(self.settings)),
            export_attempts=self.settings.export_attempts,
            min_split_span=self.settings.min_split_window,
        )

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """The CLI's sync: every selected stream, records written by :meth:`_emit` (or as
        BATCH files), through :meth:`sync` like singer-sdk's per-stream path."""
        streams = [cast("ExportStream", s) for s in self.tap.streams.values() if s.selected]
        emit: Emit = self._emit
        prepare: Callable[[], None] | None = None
        if self.settings.batch is not None:  # BATCH files instead of RECORD messages
            from tap_commerce_exports.singer.batch_sync import BatchWindows

            batches = BatchWindows(self, self.settings.batch)
            emit = batches.emit
            prepare = lambda: batches.remove_loaded(streams)  # noqa: E731
        for _ in self.sync(streams, emit, prepare=prepare):
            pass  # these emitters write the records themselves: they yield none

    def sync(
        self,
        streams: list[ExportStream],
        emit: Emit,
        *,
        announce: bool = True,
        prepare: Callable[[], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The one sync path, for the CLI (:meth:`run`) and singer-sdk's per-stream path
        (:meth:`iter_stream_records`): plan windows from state, run their exports through
        the engine, hand each ready window to ``emit`` in window order, then move the
        bookmark and write STATE; yields what ``emit`` yields (records, for a caller that
        writes them itself). ``announce``: write each stream's SCHEMA first (the SDK's
        ``Stream.sync`` has already). ``prepare``: work to do once the streams' maps are
        registered and the windows planned (the BATCH writer removes the files the
        bookmark proves loaded).

        Everything opened here is closed when it ends, however it ends (done, failed, or
        the caller stopped reading): the engine and its downloader's session, the
        provider's API client, the webhook receiver, the work directory.
        """
        workdir: Path | None = None
        receiver = None
        started = time.monotonic()
        progress: dict[str, StreamProgress] = {}
        try:
            if not streams:
                LOGGER.warning("no stream is selected: nothing to do")
                return
            progress = {  # the readers' schema: the account property is the sync's own
                s.name: StreamProgress(
                    s, without_account(dict(s.schema)), deselected=deselected_paths(s.mask)
                )
                for s in streams
            }
            if announce:
                for p in progress.values():
                    self._write_schema(p)
            self.output.state(snapshot(self.state))
            jobs = self.plan(streams)
            if jobs:
                # Exports take minutes on the real APIs: say why nothing comes for a while.
                LOGGER.info(
                    "creating %d export(s); records follow once the first is ready "
                    "(to check access without creating exports, run with --test)",
                    len(jobs),
                )
            if prepare is not None:
                prepare()
            workdir = Path(tempfile.mkdtemp(prefix="tap-commerce-exports-"))  # mode 0700
            self.orchestrator = self._orchestrator(
                workdir, webhook_active=self.settings.webhook_listen is not None
            )
            if self.settings.webhook_listen is not None:
                from tap_commerce_exports.webhook import WebhookReceiver

                host, port = self.settings.webhook_listen
                receiver = WebhookReceiver(
                    host,
                    port,
                    self.settings.webhook_secret or "",
                    self.orchestrator.wake,
                    store=self.tap.config.get("store"),  # as configured: not the api_url host
                    # many stores: each one's own secret, and its export woken
                    stores={a: s.webhook_secret or "" for a, s in self.accounts.items()}
                    if self.many
                    else None,
                    on_account_export=self.orchestrator.wake if self.many else None,
                )
                receiver.start()
            names = [s.name for s in streams]

            def exports_changed() -> None:
                self._save_exports(names)
                self.output.state(snapshot(self.state))

            for job in self.orchestrator.run(jobs, on_exports=exports_changed):
                p = progress[job.stream.name]
                account = self.account_of(job)
                if job.state is JobState.FAILED:
                    if job.account_failed and job.error is not None:
                        if not self.many:
                            raise job.error  # the sync's one account can't go on: its own words
                        if account not in self.failed_accounts:
                            self.failed_accounts[account] = job.error
                            LOGGER.error("%s", account_failure_line(self.accounts[account], job.error))
                    else:
                        self.failed_pairs.setdefault(
                            (job.stream.name, account), job.error or ExportFailed(job.label)
                        )
                        p.error = p.error or job.error
                    exports_changed()  # its export, and the later ones cancelled, leave the state
                    continue
                before = p.records
                try:
                    records = emit(job, p)
                    if records is not None:
                        yield from records
                except UserError as exc:
                    if isinstance(exc, ExportFailed) or not _is_stream_local(exc):
                        raise
                    LOGGER.error("%s", exc)
                    p.error = p.error or exc
                    self.failed_pairs.setdefault((job.stream.name, account), exc)
                    self.orchestrator.fail(job, exc)
                    exports_changed()  # its export leaves the state: a rerun asks for a new one
                    continue
                write_bookmark(self.state, p.stream.name, account, job.window.end)
                self._save_exports(names, besides=job)
                self.output.state(snapshot(self.state))
                self._count(p, account, p.records - before, started)
        finally:
            if receiver is not None:
                receiver.stop()
            if self.orchestrator is not None:
                self.orchestrator.stop()
                self.orchestrator.downloader.close()
            for provider in self.providers.values():
                provider.close()
            if self.rejects is not None:
                self.rejects.close()
            if workdir is not None:  # the run started: flush what it wrote (a refusal before
                shutil.rmtree(workdir, ignore_errors=True)  # it, e.g. parquet's, writes nothing)
                self.output.flush()
        elapsed = time.monotonic() - started
        total = sum(p.records for p in progress.values())
        LOGGER.info("sync finished in %.1fs: %d records from %d stream(s)", elapsed, total, len(progress))
        self._log_sync_durations(progress, started)
        if self.many:
            self._raise_account_failures()
            return
        failed = [p for p in progress.values() if p.error is not None]
        if failed:
            first = failed[0]
            others = f" (and {len(failed) - 1} more stream(s) failed, see the log)" if len(failed) > 1 else ""
            raise ExportFailed(f"stream '{first.stream.name}' failed: {first.error}{others}")

    def _count(self, p: StreamProgress, account: str, records: int, started: float) -> None:
        """A window's records are out: its METRIC point and the progress line's total."""
        record_count(p.stream.name, account, records)
        self.finished_at[(p.stream.name, account)] = time.monotonic() - started
        if self.orchestrator is not None:
            self.orchestrator.records_emitted += records

    def _log_sync_durations(self, progress: dict[str, StreamProgress], started: float) -> None:
        """``sync_duration`` per (stream, account): until its last window was emitted
        (until now for one that failed or had nothing to do)."""
        now = time.monotonic() - started
        for name in progress:
            for account in self.providers:
                failed = (name, account) in self.failed_pairs or account in self.failed_accounts
                sync_duration(name, account, self.finished_at.get((name, account), now), failed=failed)

    def _raise_account_failures(self) -> None:
        """One line per failed account, naming it and what to fix; the others finished."""
        lines: list[str] = []
        for account, settings in self.accounts.items():
            error: BaseException | None = self.failed_accounts.get(account)
            if error is None:
                streams = [(n, e) for (n, a), e in self.failed_pairs.items() if a == account]
                if not streams:
                    continue
                name, first = streams[0]
                more = (
                    f" (and {len(streams) - 1} more stream(s) failed, see the log)"
                    if len(streams) > 1
                    else ""
                )
                error = ExportFailed(f"stream '{name}' failed: {first}{more}")
            lines.append(account_failure_line(settings, error))
        if lines:
            done = len(self.accounts) - len(lines)
            LOGGER.error(
                "%d of %d accounts failed; the other %d finished", len(lines), len(self.accounts), done
            )
            raise AccountsFailed(lines, len(self.accounts))

    # ------------------------------------------------------------------ emitting
    def _write_schema(self, p: StreamProgress) -> None:
        stream = p.stream
        schema = with_account(selected_schema(p.schema, p.deselected) if p.deselected else p.schema)
        mapper = self.tap.mapper
        mapper.register_raw_stream_schema(stream.name, schema, stream.primary_keys)
        for stream_map in output_maps(mapper, stream.name):
            if self.settings.batch is not None and self.settings.batch.format == "parquet":
                refusal = parquet_refusal(stream_map.stream_alias, stream_map.transformed_schema)
                if refusal:  # before any output is flushed: the run writes nothing
                    raise ConfigError(refusal)
            self.output.schema(
                stream_map.stream_alias,
                stream_map.transformed_schema,
                stream_map.transformed_key_properties or [],
                # as the SDK's own SCHEMA messages: the replication key (the window field)
                [stream.replication_key] if stream.replication_key else None,
            )

    def _window_filter(self, job: ExportJob) -> WindowFilter:
        """The job's window, and where a file may keep each row's window instant: the
        column named by ``window_columns`` if set, else every name the stream's window
        field may have (the provider's table)."""
        window: Window = job.window
        definition = job.stream
        override = self.settings.window_columns.get(definition.name)
        names = (override,) if override else definition.window_field_names
        value = self.provider.facts.window_value  # how its files write instants
        return WindowFilter(definition.window_field, value(window.start), value(window.end), names)

    def _emit(self, job: ExportJob, p: StreamProgress) -> None:
        time_extracted = datetime.now(timezone.utc).isoformat()
        write = self._record_sink(p, time_extracted)

        def new_columns() -> None:
            nonlocal write
            self._write_schema(p)
            write = self._record_sink(p, time_extracted)

        before = p.records
        account = self.account_of(job)
        for record in self._read(job, p, new_columns):  # hot loop: one call per record
            record[ACCOUNT_PROPERTY] = account  # after the reader: a file's value never wins
            write(record)
        LOGGER.debug("%s: %d records written", job.label, p.records - before)

    def _record_sink(self, p: StreamProgress, time_extracted: str) -> RecordWriter:
        """One callable per record into this stream's RECORD messages (``record_sink``)."""
        targets = [
            (m, self.output.record_writer(m.stream_alias, time_extracted))
            for m in output_maps(self.tap.mapper, p.stream.name)
        ]
        return record_sink(p.deselected, targets)

    def _read(
        self, job: ExportJob, p: StreamProgress, on_new_columns: Callable[[], None] | None
    ) -> Iterator[dict[str, Any]]:
        """Typed records of one job's files, in file order, inside the job's window."""
        stream = p.stream
        facts = self.provider.facts
        reader_cls = facts.file_reader
        window_filter = self._window_filter(job)
        count = out_of_window = rejected = undated = 0
        window_column = window_filter.field
        for index, path in enumerate(job.files):
            label = f"{stream.name} export {job.export_id} file {index + 1}"
            with (
                _window_column_hint(),
                reader_cls(
                    path,
                    p.schema,
                    stream=stream.name,
                    file_label=label,
                    on_invalid=self.on_invalid,
                    window=window_filter,
                    primary_keys=stream.definition.primary_keys,
                ) as reader,
            ):
                window_column = reader.window_column or window_column
                if facts.files_add_columns:
                    new = [c for c in reader.unknown_columns if c not in p.schema["properties"]]
                    if new:
                        self._add_columns(job, p, new, reader.window_column, window_filter.field)
                        if on_new_columns is not None:
                            on_new_columns()
                yield from reader
                out_of_window += reader.records_out_of_window
                rejected += reader.records_rejected
                undated += reader.records_without_window_value
                count += reader.rows_read - reader.records_out_of_window - reader.records_rejected
        p.records += count
        extra = ""
        if out_of_window:
            extra += (
                f"; skipped {out_of_window} whose '{job.stream.window_field}' is outside this "
                "window (each is emitted with the window it falls in)"
            )
        if rejected:
            extra += f", {rejected} rejected"
        if undated:
            extra += f", {undated} kept without a '{window_column}' value"
        LOGGER.info("%s: emitted %d records from export %s%s", job.label, count, job.export_id, extra)

    @staticmethod
    def _add_columns(
        job: ExportJob, p: StreamProgress, new: list[str], window_column: str | None, window_field: str
    ) -> None:
        """Widen the stream's schema by the file's columns it does not know: strings,
        except the window column under another name, typed like the window field."""
        properties = p.schema["properties"]
        added = {c: dict(UNKNOWN_COLUMN_SCHEMA) for c in new}
        if window_column in added:
            added[window_column] = dict(properties.get(window_field) or WINDOW_COLUMN_SCHEMA)
            LOGGER.info(
                "%s: rows are placed in windows by column '%s' (typed like '%s')",
                job.label,
                window_column,
                window_field,
            )
        strings = [c for c in new if c != window_column]
        if strings:
            LOGGER.info("%s: columns not in the schema kept as strings: %s", job.label, ", ".join(strings))
        p.schema = dict(p.schema, properties={**properties, **added})

    def iter_stream_records(self, stream: ExportStream) -> Iterator[dict[str, Any]]:
        """Records of ONE stream for singer-sdk's per-stream path (``Stream.sync``: its
        standard tests, ``Tap.sync_all``), through the same :meth:`sync` as a CLI run;
        only the writing of RECORD messages is left to the SDK.

        The SDK writes each record as it gets it (and flushes), while this layer buffers
        its own messages: a SCHEMA announcing a file's new columns is flushed at once, so
        that it reaches the target before the first record that carries them."""

        def announce_new_columns(p: StreamProgress) -> None:
            stream.widen_schema(p.schema)  # the SDK conforms records to the stream's schema
            self._write_schema(p)  # registers the maps, announces the columns (as run does)
            self.output.flush()

        def read(job: ExportJob, p: StreamProgress) -> Iterator[dict[str, Any]]:
            account = self.account_of(job)
            for record in self._read(job, p, lambda: announce_new_columns(p)):
                record[ACCOUNT_PROPERTY] = account  # as _emit does: a file's value never wins
                yield record

        return self.sync([stream], read, announce=False)


@contextmanager
def _window_column_hint() -> Iterator[None]:
    """Say which setting fixes a file without a window column, in the error's one line."""
    try:
        yield
    except MissingWindowColumn as exc:
        raise InvalidFile(
            f'{exc}: set \'window_columns\' to {{"{exc.stream}": "<column>"}} naming the '
            "column that holds each row's creation time"
        ) from None


def _is_stream_local(exc: UserError) -> bool:
    """Errors that end one stream, not the whole run."""
    from tap_commerce_exports.errors import InvalidFile, InvalidRecord

    return isinstance(exc, (InvalidFile, InvalidRecord))
