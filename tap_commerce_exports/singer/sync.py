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
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_commerce_exports.errors import InvalidFile, InvalidRecord, TargetGone, UserError
from tap_commerce_exports.http.download import FileDownloader, download_limits
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.orchestrator import ExportOrchestrator
from tap_commerce_exports.providers.registry import build_providers
from tap_commerce_exports.singer.account_property import without_account
from tap_commerce_exports.singer.bookmarks import SavedExport, StateKeeper
from tap_commerce_exports.singer.emitters import (
    BatchEmitter,
    Emitter,
    RecordEmitter,
    StreamProgress,
    YieldingEmitter,
)
from tap_commerce_exports.singer.failures import RunFailures
from tap_commerce_exports.singer.file_facts import FileFacts
from tap_commerce_exports.singer.output import SingerOutput
from tap_commerce_exports.singer.planning import learned_spans, plan_jobs
from tap_commerce_exports.singer.rejects import RejectsLog, fail_on_invalid
from tap_commerce_exports.singer.selection import deselected_paths
from tap_commerce_exports.singer.state_input import drop_other_accounts

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.providers.base import ExportProvider
    from tap_commerce_exports.singer.host import SyncHost, SyncStream

LOGGER = logging.getLogger("tap_commerce_exports.sync")


class ExportSync:
    """One run of the tap over its selected streams, on a :class:`SyncHost` (the Tap)."""

    def __init__(
        self,
        host: SyncHost,
        settings: Settings,
        output: SingerOutput | None = None,
        provider: ExportProvider | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.host = host
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
        self.failures = RunFailures(self.accounts, many=self.many)
        self.on_invalid: Callable[[InvalidRecord], None] = fail_on_invalid
        self.rejects: RejectsLog | None = None
        if settings.on_invalid_record == "log":
            self.rejects = RejectsLog(settings.rejects_dir)
            self.on_invalid = self.rejects
        self.orchestrator: ExportOrchestrator | None = None
        self._keeper: StateKeeper | None = None
        self.wall_clock = wall_clock  # the engine's wall clock (None: the real one)

    @property
    def many(self) -> bool:
        """Whether this run reads several accounts (jobs then name theirs)."""
        return len(self.providers) > 1

    def account_of(self, job: ExportJob) -> str:
        """The account whose records ``job`` brings ("" on a job: the only one)."""
        return job.account or self.provider.account

    @property
    def state(self) -> dict[str, Any]:
        """The host's state, read and written by ``singer/bookmarks.py``."""
        return self.host.sync_state

    def emitter(self, kind: type[Emitter] | None = None) -> Emitter:
        """The run's emitter: ``kind``, else BATCH files if ``batch_config`` is set, else
        RECORD messages."""
        args = (self.output, self.host.mapper, self.settings, self.provider.facts, self.on_invalid)
        if kind is None and self.settings.batch is not None:
            emitter: Emitter = BatchEmitter(*args, batch=self.settings.batch)
        else:
            emitter = (kind or RecordEmitter)(*args)
        emitter.file_facts = FileFacts(self.providers, self.settings.file_timezone)
        return emitter

    @property
    def keeper(self) -> StateKeeper:
        """The state while the run goes: lookups by key, STATE at a bounded rate."""
        if self._keeper is None:
            output = self.output
            self._keeper = StateKeeper(self.state, output.state_json, bytes_out=lambda: output.bytes_written)
        return self._keeper

    def _save_exports(self, besides: ExportJob | None = None) -> None:
        """Put the exports in flight of the pairs whose jobs moved (and of ``besides``,
        just emitted, whose export leaves) into the state: O(changes), not O(pairs)."""
        orchestrator = self.orchestrator
        assert orchestrator is not None
        pairs = orchestrator.take_export_changes()
        if besides is not None:
            pairs.add(besides.pair)
        for pair in pairs:
            name, job_account = pair
            exports = [
                SavedExport(j.export_id, j.window.start, j.window.end, j.created_wall)
                for j in orchestrator.exports_of(pair, besides=besides)
                if j.export_id is not None
            ]
            self.keeper.set_exports(name, job_account or self.provider.account, exports)

    def _final_state(self) -> None:
        """At the end, and before any exit: the last STATE, with the exports still in
        flight (saved before the engine stops and cancels them: a rerun follows them)
        and the window spans learned. A target gone (broken pipe) gets nothing more."""
        if self._keeper is None:
            return
        try:
            if self.orchestrator is not None:
                self._save_exports()
                for (name, job_account), span in self.orchestrator.learned_spans().items():
                    self.keeper.set_span(name, job_account or self.provider.account, span)
            self.keeper.flush()
        except TargetGone:
            pass

    def _orchestrator(
        self, workdir: Path, *, webhook_active: bool, spans: dict[tuple[str, str], timedelta]
    ) -> ExportOrchestrator:
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
            learned_spans=spans,
            planned_span=self.settings.window,
            wall_clock=self.wall_clock,
        )

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """The CLI's sync: every selected stream, records written by the run's emitter
        (RECORD messages, or BATCH files), through :meth:`sync`."""
        for _ in self.sync(self.host.selected_streams(), self.emitter()):
            pass  # these emitters write the records themselves: they yield none

    def iter_stream_records(self, stream: SyncStream) -> Iterator[dict[str, Any]]:
        """Records of ONE stream for singer-sdk's per-stream path (``Stream.sync``: its
        standard tests, ``Tap.sync_all``), through the same :meth:`sync` as a CLI run;
        only the writing of RECORD messages is left to the SDK."""
        return self.sync([stream], self.emitter(YieldingEmitter), announce=False)

    def sync(
        self, streams: Sequence[SyncStream], emitter: Emitter, *, announce: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The one sync path, for the CLI (:meth:`run`) and singer-sdk's per-stream path
        (:meth:`iter_stream_records`): plan windows from state, run their exports through
        the engine, hand each ready window to ``emitter`` in window order, then move the
        bookmark and write STATE; yields what the emitter yields (records, for a caller
        that writes them itself). ``announce``: write each stream's SCHEMA first (the
        SDK's ``Stream.sync`` has already).

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
                    emitter.announce(p)
            drop_other_accounts(self.state, self.providers)  # what this run cannot move leaves
            keeper = self.keeper
            keeper.write(now=True)
            jobs = plan_jobs(keeper, self.settings, streams, self.providers, many=self.many)
            if jobs:
                # Exports take minutes on the real APIs: say why nothing comes for a while.
                LOGGER.info(
                    "creating %d export(s); records follow once the first is ready "
                    "(to check access without creating exports, run with --test)",
                    len(jobs),
                )
            emitter.prepare(streams, self.providers, self.state)
            workdir = Path(tempfile.mkdtemp(prefix="tap-commerce-exports-"))  # mode 0700
            self.orchestrator = self._orchestrator(
                workdir,
                webhook_active=self.settings.webhook_listen is not None,
                spans=learned_spans(keeper, streams, self.providers, many=self.many),
            )
            if self.settings.webhook_listen is not None:
                from tap_commerce_exports.webhook import WebhookReceiver

                host, port = self.settings.webhook_listen
                receiver = WebhookReceiver(
                    host,
                    port,
                    self.settings.webhook_secret or "",
                    self.orchestrator.wake,
                    store=self.host.config.get("store"),  # as configured: not the api_url host
                    # many stores: each one's own secret, and its export woken
                    stores={a: s.webhook_secret or "" for a, s in self.accounts.items()}
                    if self.many
                    else None,
                    on_account_export=self.orchestrator.wake if self.many else None,
                )
                receiver.start()

            def exports_changed() -> None:
                self._save_exports()
                keeper.write()

            for job in self.orchestrator.run(jobs, on_exports=exports_changed, on_idle=keeper.write):
                p = progress[job.stream.name]
                account = self.account_of(job)
                if job.state is JobState.FAILED:
                    self.failures.window_failed(job, account)
                    exports_changed()  # its export, and the later ones cancelled, leave the state
                    continue
                try:
                    records = emitter.emit(job, p, account)
                    if records is not None:
                        yield from records
                except UserError as exc:
                    if not isinstance(exc, (InvalidFile, InvalidRecord)):  # the run's, not the stream's
                        raise
                    self.failures.stream_failed(job.stream.name, account, exc)
                    self.orchestrator.fail(job, exc)
                    exports_changed()  # its export leaves the state: a rerun asks for a new one
                    continue
                keeper.set_bookmark(p.stream.name, account, job.window.end)
                emitter.bookmarked(self.state, p.stream.name, account)
                keeper.changed(p.stream.name, account)  # the emitter may note its own on the entry
                self._save_exports(besides=job)
                keeper.write()
        finally:
            self._final_state()
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
        self.failures.raise_final(progress)
