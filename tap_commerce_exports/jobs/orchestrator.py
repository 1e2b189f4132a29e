"""Runs the export jobs of ALL selected streams, of every account, at once, within limits.

Why an engine of its own: singer-sdk syncs streams one after another, so a tap that
waited inside one stream's ``get_records`` would wait n times for n exports. Here the
jobs of every stream and account run together, and the Singer layer consumes finished
ones through :meth:`ExportOrchestrator.run`, in window order per (stream, account), so
records and bookmarks still advance window by window.

The engine is made of parts with one job each; this class only builds and joins them:

* :class:`~jobs.board.JobBoard`: every job, the lock, the ONE place jobs move (the
  transition table of ``jobs/job.py``) and the one place a failure is judged an
  account's or a window's (``jobs/failures.py``).
* :class:`~jobs.capacity.Capacity`: which create may go now (places in flight per
  account and in all, the provider's export hours, refused creates per account).
* :class:`~jobs.scheduler.ExportScheduler`: the engine thread (saved exports, creates,
  status checks, retries and splits, timeouts).
* :class:`~jobs.fetcher.FileFetcher`: the download pool (fresh URLs, retries).
* :class:`~jobs.handoff.OrderedHandoff`: the consumer's side (window order per pair).

Accounts: each account (store, merchant) has its own provider; what the provider
decides per account stays per account, and an account failure stops only that account.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tap_commerce_exports.http.download import FileDownloader
from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.capacity import Capacity, creation_order
from tap_commerce_exports.jobs.fetcher import FileFetcher
from tap_commerce_exports.jobs.handoff import OrderedHandoff
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.requests import WORKERS_FOR_MANY
from tap_commerce_exports.jobs.scheduler import ExportScheduler, Wait, wait_on_condition
from tap_commerce_exports.jobs.spans import SpanMemory
from tap_commerce_exports.providers.base import ExportProvider

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: Most downloads run at once (more wait their turn in the pool, holding their place).
MAX_DOWNLOAD_WORKERS = 32


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _saved(job: ExportJob) -> bool:
    """Whether ``job``'s export belongs in the saved state: it exists and its records
    were not emitted (or its account failed: a rerun with the setting fixed follows it)."""
    return job.export_id is not None and (
        job.state in (JobState.WAITING, JobState.DOWNLOADING, JobState.READY) or job.account_failed
    )


class ExportOrchestrator:
    """Owns every export job of a sync."""

    download_attempts = 5
    url_refreshes = 3
    retry_pause = 0.5
    #: Creates whose answer may be lost in a row before the window fails.
    lost_create_attempts = 3

    def __init__(
        self,
        providers: ExportProvider | Mapping[str, ExportProvider],
        *,
        workdir: Path,
        max_concurrent_exports: int,
        max_concurrent_total: int | None = None,
        poll_interval: float,
        poll_max_interval: float,
        export_timeout: float,
        outside_hours: str = "wait",
        webhook_active: bool = False,
        file_workers: int = 4,
        downloader: FileDownloader | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        wait: Wait = wait_on_condition,
        export_attempts: int = 3,
        min_split_span: timedelta | None = None,
        learned_spans: Mapping[tuple[str, str], timedelta] | None = None,
        planned_span: timedelta = timedelta(days=365),
        request_workers: int | None = None,
    ) -> None:
        #: By account key; one provider given alone is the engine's only one ("").
        self.providers: dict[str, ExportProvider] = (
            dict(providers) if isinstance(providers, Mapping) else {"": providers}
        )
        if not self.providers:
            raise ValueError("the engine needs at least one provider")
        wall = wall_clock or utcnow  # injected (a spec's clock), never patched
        self.downloader = downloader or FileDownloader()
        self.board = JobBoard(self.providers, refusal_base=poll_interval)
        self.capacity = Capacity(
            self.board,
            per_account=max_concurrent_exports,
            total=max_concurrent_total,
            outside_hours=outside_hours,
            clock=clock,
            wall_clock=wall,
            hours_unknown_wait=poll_max_interval,
        )
        places = max(1, max_concurrent_exports) * len(self.providers)
        if max_concurrent_total is not None:
            places = min(places, max(1, max_concurrent_total))
        self.fetcher = FileFetcher(
            self.board,
            self.downloader,
            workdir=workdir,
            clock=clock,
            job_workers=min(places, MAX_DOWNLOAD_WORKERS),
            file_workers=file_workers,
            download_attempts=self.download_attempts,
            url_refreshes=self.url_refreshes,
            retry_pause=self.retry_pause,
        )
        self.scheduler = ExportScheduler(
            self.board,
            self.capacity,
            self.fetcher,
            poll_interval=poll_interval,
            poll_max_interval=poll_max_interval,
            export_timeout=export_timeout,
            webhook_active=webhook_active,
            export_attempts=export_attempts,
            min_split_span=min_split_span,
            lost_create_attempts=self.lost_create_attempts,
            retry_pause=self.retry_pause,
            clock=clock,
            wall_clock=wall,
            wait=wait,
            spans=SpanMemory(learned_spans, smallest=min_split_span),
            planned_span=planned_span,
            # several accounts: a few requests at once (their limiters pace them); one
            # account: on the engine thread, one at a time
            request_workers=request_workers or (WORKERS_FOR_MANY if len(self.providers) > 1 else 1),
        )
        self.handoff = OrderedHandoff(self.board)
        self._thread: threading.Thread | None = None

    @property
    def adopted(self) -> int:
        """Exports followed from saved state (or the provider's list), this run."""
        return self.scheduler.adopted

    def learned_spans(self) -> dict[tuple[str, str], timedelta]:
        """(stream, account) -> the window span its exports were found to work at, where
        a window had to be split (the next run plans at it; ``jobs/spans.py``)."""
        return self.scheduler.spans.learned()

    @property
    def _jobs(self) -> list[ExportJob]:  # what tests and the bench look at
        return self.board.jobs

    # ---------------------------------------------------------------- consumer side
    def run(
        self,
        jobs: Iterable[ExportJob],
        on_exports: Callable[[], None] | None = None,
        on_idle: Callable[[], object] | None = None,
    ) -> Iterator[ExportJob]:
        """Start all ``jobs``; yield each once READY or FAILED, in window order per
        (stream, account).

        The caller emits a READY job's files, then asks for the next one; the job's files
        are removed when the caller comes back (or when the sync stops). After a job
        FAILED, the later jobs of its (stream, account) are cancelled and never yielded,
        except when its whole account failed (``job.account_failed``): then every job of
        the account that had not finished FAILED with the same error, and each is
        yielded in its order. A SPLIT job's halves are yielded in its place, first half
        first.

        ``on_exports`` is called on the caller's thread (between yields, without the
        lock) soon after an export was created, adopted, replaced or split, so the
        caller can save :meth:`exports_in_flight` before waiting on them. ``on_idle`` is
        called there too each time the caller's thread waits for a job (so the caller can
        write what it held back, e.g. a STATE kept to a bounded rate).
        """
        ordered = sorted(jobs, key=creation_order)
        self.board.add(ordered)
        self._thread = threading.Thread(target=self.scheduler.loop, name="export-orchestrator", daemon=True)
        self._thread.start()
        try:
            yield from self.handoff.deliver(ordered, on_exports, on_idle)
        finally:
            self.stop()

    def exports_in_flight(self, *, besides: ExportJob | None = None) -> list[ExportJob]:
        """Jobs whose export exists and whose records were not emitted yet (window order);
        each carries its ``account``, so the caller saves them per (stream, account).

        What a rerun can adopt: per account at most ``2 * max_concurrent_exports`` of
        them (the places in flight plus the READY ones held for the consumer). An account
        that failed keeps its exports: a rerun with the setting fixed follows them.
        """
        with self.board.cv:
            return [j for j in self.board.jobs if j is not besides and _saved(j)]

    def take_export_changes(self) -> set[tuple[str, str]]:
        """The (stream, job account) pairs whose exports in flight may have changed since
        the last call: the caller re-saves only those (O(changes), not every pair)."""
        with self.board.cv:
            pairs, self.board.export_pairs = self.board.export_pairs, set()
            return pairs

    def exports_of(self, pair: tuple[str, str], *, besides: ExportJob | None = None) -> list[ExportJob]:
        """:meth:`exports_in_flight` of one (stream, job account) pair."""
        with self.board.cv:
            return sorted(
                (j for j in self.board.jobs_of_pair(pair) if j is not besides and _saved(j)),
                key=lambda j: j.window.start,
            )

    def wake(self, export_id: str, account: str | None = None) -> bool:
        """Check this export of ``account`` (None: of any account) now: the webhook said
        it is ready. False if unknown.

        The request lives on the job and ends with its WAITING (see ``ExportJob.move``):
        one that comes while the export's status is being read asks for one more read.
        """
        board = self.board
        with board.cv:
            for job in board.jobs_of_export(export_id):
                if job.export_id == export_id and (account is None or board.is_account(job, account)):
                    board.wake(job)
                    return True
            board.note_early_wake(export_id, account)  # its create's answer may be on its way
        return False

    def fail(self, job: ExportJob, exc: BaseException) -> None:
        """The consumer could not use the READY ``job`` it holds (e.g. a bad file): fail it.

        Its (stream, account) stops at this window once the consumer asks for the next
        job, as when the engine fails a job.
        """
        self.handoff.fail(job, exc)

    def stop(self) -> None:
        """Stop the engine; exports still running on the provider simply expire there."""
        self.board.stop()
        self.fetcher.stop()  # cuts downloads in flight: no pool thread outlives the stop
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.fetcher.shutdown()
        self.scheduler.runner.shutdown()
        for job in self.board.jobs:
            if job.state is not JobState.DOWNLOADING:
                job.release()
