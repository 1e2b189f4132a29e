"""Runs the export jobs of ALL selected streams at once, within limits.

Why an engine of its own: singer-sdk syncs streams one after another, so a tap that
waited inside one stream's ``get_records`` would wait n times for n exports. Here one
background thread owns every job: it creates exports ahead (at most
``max_concurrent_exports`` in flight), polls all pending ones in one loop, and hands
finished exports to a small download pool. The caller (the Singer layer) consumes
finished jobs in each stream's window order through :meth:`ExportOrchestrator.run`, so
records and bookmarks still advance window by window.

Threads: the engine thread, the download pool, the consumer and ``stop()`` all change
jobs. Every change of a job's state goes through :meth:`ExportOrchestrator._move`
(under the lock, from the state it expects); after every request the engine re-reads
the job's state under the lock, so a job cancelled while its request was in flight
stays cancelled.

Accounts: the jobs may belong to several accounts (stores, merchants), each with its own
provider. Everything the provider decides per account stays per account (a lane each:
places in flight, refused creates, export hours, lookups); ``max_concurrent_total``
caps the places of all accounts together. An error that ends an account
(:mod:`jobs.failures`) fails only that account's jobs; the others go on.

Durable exports: a job may come with an export saved in the last run's STATE; it is
adopted (no create) and replaced if it is gone or failed. A create whose answer was lost
is looked up before it is sent again. A failed export is retried ``export_attempts``
times, then its window is split in two (down to ``min_split_span``); each time a
job's export changes, the consumer is told (``on_exports``) so it can save them.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tap_commerce_exports.errors import ExportFailed, UserError
from tap_commerce_exports.http.download import (
    DownloadError,
    FileDownloader,
    TruncatedDownload,
    UrlExpired,
)
from tap_commerce_exports.jobs.create_refusals import CreateRefusals
from tap_commerce_exports.jobs.failures import OutsideExportHours, is_account_failure
from tap_commerce_exports.jobs.job import IN_FLIGHT, Expected, ExportJob, JobState
from tap_commerce_exports.jobs.polling import next_poll_delay
from tap_commerce_exports.providers.base import (
    CreateAnswerLost,
    ExportGone,
    ExportPhase,
    ExportProvider,
    ExportsBusy,
    ExportStatus,
    FoundExport,
)
from tap_commerce_exports.windows import Window

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: How far the provider's clock may be behind ours when its created_at is compared.
CLOCK_SKEW = timedelta(minutes=10)
#: Most downloads run at once (more wait their turn in the pool, holding their place).
MAX_DOWNLOAD_WORKERS = 32


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(eq=False)
class AccountLane:
    """What the engine keeps for one account: its provider, its jobs and their counts
    by state, its create queue, its refused creates and closed hours, its failure."""

    key: str  # as in the engine's providers ("" for its only provider)
    provider: ExportProvider
    refusals: CreateRefusals
    jobs: list[ExportJob] = field(default_factory=list)
    queue: deque[ExportJob] = field(default_factory=deque)
    counts: Counter[JobState] = field(default_factory=Counter)
    hours_blocked_until: float = 0.0  # its provider's published hours are closed
    hours_logged_until: datetime | None = None
    failure: BaseException | None = None  # the error that ended the account

    def in_flight(self) -> int:
        return sum(self.counts[s] for s in IN_FLIGHT)

    def creates_blocked_until(self) -> float:
        return max(self.hours_blocked_until, self.refusals.blocked_until)

    def next_queued(self) -> ExportJob | None:
        while self.queue and self.queue[0].state is not JobState.QUEUED:
            self.queue.popleft()
        return self.queue[0] if self.queue else None


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
        export_attempts: int = 3,
        min_split_span: timedelta | None = None,
    ) -> None:
        #: By account key; one provider given alone is the engine's only one ("").
        self.providers: dict[str, ExportProvider] = (
            dict(providers) if isinstance(providers, Mapping) else {"": providers}
        )
        if not self.providers:
            raise ValueError("the engine needs at least one provider")
        self._lanes = {
            key: AccountLane(key, provider, CreateRefusals(base=poll_interval))
            for key, provider in self.providers.items()
        }
        self.workdir = workdir
        self.max_concurrent = max_concurrent_exports  # per account
        self.max_total = max_concurrent_total  # all accounts together (None: no cap)
        self._totals: Counter[JobState] = Counter()
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.export_timeout = export_timeout
        self.outside_hours = outside_hours
        self.webhook_active = webhook_active
        self.downloader = downloader or FileDownloader()
        self.clock = clock
        self.wall_clock = wall_clock or (lambda: utcnow())  # late-bound: tests patch utcnow
        self._cv = threading.Condition()
        self._jobs: list[ExportJob] = []
        self._fatal: BaseException | None = None  # a bug on the engine thread: ends the run
        self._stopped = False
        places = max(1, max_concurrent_exports) * len(self._lanes)
        if max_concurrent_total is not None:
            places = min(places, max(1, max_concurrent_total))
        self._job_pool = cf.ThreadPoolExecutor(min(places, MAX_DOWNLOAD_WORKERS), "export-download")
        self._file_pool = cf.ThreadPoolExecutor(max(1, file_workers), "export-file")
        self._thread: threading.Thread | None = None
        self.export_attempts = max(1, export_attempts)
        self.min_split_span = min_split_span  # None: a failing window is never split
        self._exports_changed = False  # an export was created, adopted, replaced or split
        self.adopted = 0  # exports followed from saved state, this run

    # ---------------------------------------------------------------- consumer side
    def run(
        self, jobs: Iterable[ExportJob], on_exports: Callable[[], None] | None = None
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
        caller can save :meth:`exports_in_flight` before waiting on them.
        """
        ordered = sorted(jobs, key=_creation_order)
        per_pair: dict[tuple[str, str], deque[ExportJob]] = {}
        for each in sorted(ordered, key=lambda j: j.seq):
            per_pair.setdefault(each.pair, deque()).append(each)
        with self._cv:
            self._jobs = []
            self._add_jobs(ordered)
        self._thread = threading.Thread(target=self._loop, name="export-orchestrator", daemon=True)
        self._thread.start()
        try:
            while per_pair:
                with self._cv:
                    job: ExportJob | None = None
                    while job is None:
                        if self._fatal is not None:
                            raise self._fatal
                        if self._exports_changed and on_exports is not None:
                            self._exports_changed = False
                            self._cv.release()
                            try:
                                on_exports()
                            finally:
                                self._cv.acquire()
                            continue
                        for pending in per_pair.values():
                            _expand_split_head(pending)
                            head = pending[0]
                            if head.state in (JobState.READY, JobState.FAILED):
                                job = head
                                break
                        if job is None:
                            # Short: this is the main thread, and a SIGTERM the kernel hands
                            # to another thread is only acted on when the main one wakes.
                            self._cv.wait(0.1)
                    per_pair[job.pair].popleft()
                try:
                    yield job
                finally:
                    job.release()
                    with self._cv:
                        queue = per_pair.get(job.pair)
                        if job.state is JobState.FAILED:
                            # the caller or the engine failed this window: later windows of
                            # the pair must not be emitted (the bookmark can't pass this one)
                            self._abandon_after(job)
                            rest = _failed_with_account(queue) if job.account_failed else None
                            if rest:
                                per_pair[job.pair] = rest
                            else:
                                per_pair.pop(job.pair, None)
                        else:
                            if job.state is JobState.READY:  # (stop() may have cancelled it)
                                self._move(job, JobState.READY, JobState.CONSUMED)
                            if queue is not None and not queue:
                                per_pair.pop(job.pair, None)
                        self._cv.notify_all()
        finally:
            self.stop()

    def exports_in_flight(self, *, besides: ExportJob | None = None) -> list[ExportJob]:
        """Jobs whose export exists and whose records were not emitted yet (window order);
        each carries its ``account``, so the caller saves them per (stream, account).

        What a rerun can adopt: per account at most ``2 * max_concurrent_exports`` of
        them (the places in flight plus the READY ones held for the consumer). An account
        that failed keeps its exports: a rerun with the setting fixed follows them.
        """
        with self._cv:
            return [
                j
                for j in self._jobs
                if j is not besides
                and j.export_id is not None
                and (j.state in (JobState.WAITING, JobState.DOWNLOADING, JobState.READY) or j.account_failed)
            ]

    def wake(self, export_id: str, account: str | None = None) -> bool:
        """Check this export of ``account`` (None: of any account) now: the webhook said
        it is ready. False if unknown.

        The request lives on the job and ends with its WAITING (see ``ExportJob.move``):
        one that comes while the export's status is being read asks for one more read.
        """
        with self._cv:
            for job in self._jobs:
                if job.export_id == export_id and (account is None or self._is_account(job, account)):
                    if job.state is JobState.WAITING:
                        job.wake_requested = True
                        self._cv.notify_all()
                    return True
        return False

    def fail(self, job: ExportJob, exc: BaseException) -> None:
        """The consumer could not use the READY ``job`` it holds (e.g. a bad file): fail it.

        Its stream stops at this window once the consumer asks for the next job, as
        when the engine fails a job.
        """
        with self._cv:
            job.error = exc
            self._move(job, JobState.READY, JobState.FAILED)

    def stop(self) -> None:
        """Stop the engine; exports still running on the provider simply expire there."""
        with self._cv:
            self._stopped = True
            for job in self._jobs:
                if job.state in (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.READY):
                    self._move(job, job.state, JobState.CANCELLED)
            self._cv.notify_all()
        self.downloader.cancel()  # cuts downloads in flight: no pool thread outlives the stop
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._job_pool.shutdown(wait=False, cancel_futures=True)
        self._file_pool.shutdown(wait=False, cancel_futures=True)
        for job in self._jobs:
            if job.state is not JobState.DOWNLOADING:
                job.release()

    # ---------------------------------------------------------------- engine thread
    def _loop(self) -> None:
        try:
            self._find_listed()
            self._adopt_saved()
            while True:
                with self._cv:
                    if self._stopped:
                        return
                self._create_due()
                self._poll_due()
                with self._cv:
                    if self._stopped:  # stop() may have set it meanwhile
                        return  # type: ignore[unreachable]
                    if not any(j.state in (JobState.QUEUED, JobState.WAITING) for j in self._jobs):
                        self._cv.wait(1.0)
                        continue
                    self._cv.wait(self._sleep_time())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer thread
            self._fail_all(exc)

    def _fail_all(self, exc: BaseException) -> None:
        with self._cv:
            self._fatal = exc
            self._cv.notify_all()

    def _find_listed(self) -> None:
        for lane in list(self._lanes.values()):
            self._find_listed_of(lane)

    def _find_listed_of(self, lane: AccountLane) -> None:
        """Windows with no saved export: a provider that lists its exports may still show
        one an earlier run made for it within ``export_timeout`` (that run's STATE never
        reached the state backend, e.g. a target keeps STATE until it writes records).
        One still running is followed like a saved one; a finished one is not (it may be
        another run's, made under other settings, long read): a new export is cheaper
        than a wrong one. One list per export type."""
        if not lane.provider.can_find_exports:
            return
        with self._cv:
            todo = [j for j in lane.jobs if j.adopt_id is None and j.state is JobState.QUEUED]
        since = self.wall_clock() - timedelta(seconds=self.export_timeout)
        listed: dict[str, list[FoundExport]] = {}
        for job in todo:
            export_type = job.stream.export_type
            if export_type not in listed:
                try:
                    listed[export_type] = lane.provider.recent_exports(export_type, since)
                except UserError as exc:
                    if is_account_failure(exc):
                        self._fail_account(lane, exc)
                        return
                    LOGGER.warning(
                        "could not list the recent %s exports (%s); creating new ones", export_type, exc
                    )
                    listed[export_type] = []
            match = next(
                (
                    f
                    for f in listed[export_type]
                    if (f.window_start, f.window_end) == (job.window.start, job.window.end)
                    and f.status.phase in (ExportPhase.PENDING, ExportPhase.RUNNING)
                ),
                None,
            )
            if match is not None:
                job.adopt_id, job.adopt_created_at = match.status.export_id, match.created_at
                job.adopt_listed = True

    def _adopt_saved(self) -> None:
        """QUEUED -> WAITING for every job that comes with a saved export: no create;
        its age counts towards ``export_timeout`` and its first check is now."""
        adopted: list[ExportJob] = []
        with self._cv:
            now = self.clock()
            wall = self.wall_clock()
            for job in self._jobs:
                if job.adopt_id is None or job.state is not JobState.QUEUED:
                    continue
                created = job.adopt_created_at or wall
                job.status = ExportStatus(job.adopt_id, ExportPhase.PENDING, "saved")
                job.created_at = job.first_attempt_at = now - max(0.0, (wall - created).total_seconds())
                job.created_wall = created
                job.adopted = True
                job.next_check_at = now
                self._move(job, JobState.QUEUED, JobState.WAITING)
                adopted.append(job)
            self.adopted += len(adopted)
        for job in adopted:
            LOGGER.info(
                "%s: following export %s %s (created %s); no new export",
                job.label,
                job.adopt_id,
                "an earlier run made, found in the provider's list"
                if job.adopt_listed
                else "from the last run",
                job.created_wall.strftime("%Y-%m-%d %H:%M:%S UTC") if job.created_wall else "-",
            )

    def _replace(self, job: ExportJob, expected: JobState, why: str) -> None:
        """WAITING/DOWNLOADING -> QUEUED: this window needs a new export (``why`` says
        why); it is created next, before windows after it."""
        with self._cv:
            if job.state is not expected:
                return
            old = job.export_id
            self._move(job, expected, JobState.QUEUED)
            job.status = None
            job.created_at = job.created_wall = job.download_started_at = None
            job.adopted = False
            job.checks = 0
            job.next_check_at = 0.0
            job.release()
            self._lane(job).queue.appendleft(job)
            self._exports_changed = True
        LOGGER.warning("%s: export %s %s; creating a new one", job.label, old, why)

    def _export_failed(self, job: ExportJob, status: ExportStatus) -> None:
        """An export ended failed: retry it while the budget lasts, then split the window
        (WAITING -> SPLIT), or fail the stream once its window can't be split."""
        job.failures += 1
        ended = f"export {status.export_id} ended with status '{status.raw_status}'"
        if job.adopted and job.failures == 1:
            self._replace(job, JobState.WAITING, f"from the last run ended with status '{status.raw_status}'")
            return
        if job.failures < self.export_attempts:
            self._replace(
                job,
                JobState.WAITING,
                f"ended with status '{status.raw_status}' (attempt {job.failures} of {self.export_attempts})",
            )
            return
        halves = _halves(job.window, self.min_split_span)
        if halves is None:
            self._finish_failed(
                job,
                ExportFailed(
                    f"{job.label}: {ended} ({job.failures} attempts"
                    f"{', and the window is at its smallest span' if self.min_split_span else ''}); "
                    "the stream stops here and its bookmark stays"
                ),
                JobState.WAITING,
            )
            return
        with self._cv:
            if job.state is not JobState.WAITING:
                return
            parts = (
                ExportJob(stream=job.stream, window=halves[0], seq=job.seq, account=job.account),
                ExportJob(stream=job.stream, window=halves[1], seq=job.seq, account=job.account),
            )
            job.parts = parts
            self._move(job, JobState.WAITING, JobState.SPLIT)
            self._add_jobs(parts, first=True)
            self._exports_changed = True
        LOGGER.warning(
            "%s: %s %d times; splitting the window into %s and %s",
            job.label,
            ended,
            job.failures,
            halves[0],
            halves[1],
        )

    def _create(self, job: ExportJob, provider: ExportProvider) -> ExportStatus:
        """Create the window's export; a create whose answer was lost is looked up
        before it is sent again, so one lost answer never leaves two exports."""
        export_type, window = job.stream.export_type, job.window
        for attempt in range(1, self.lost_create_attempts + 1):
            since = self.wall_clock() - CLOCK_SKEW  # the provider's clock may be behind ours
            try:
                return provider.create_export(export_type, window)
            except CreateAnswerLost as lost:
                if not provider.can_find_exports:
                    LOGGER.warning(
                        "%s: creating the export got no answer (%s); this provider can't list "
                        "its exports, so creating it again may leave a second one running unused",
                        job.label,
                        lost.reason,
                    )
                else:
                    found = provider.find_export(export_type, window, since)
                    if found is not None:
                        LOGGER.warning(
                            "%s: creating the export got no answer (%s), but export %s was made; "
                            "following it",
                            job.label,
                            lost.reason,
                            found.export_id,
                        )
                        return found
                    LOGGER.warning(
                        "%s: creating the export got no answer (%s) and no export was made; "
                        "creating it again",
                        job.label,
                        lost.reason,
                    )
            if attempt < self.lost_create_attempts:
                time.sleep(self.retry_pause * attempt)
        raise ExportFailed(
            f"{job.label}: creating the export got no answer {self.lost_create_attempts} times; "
            "the API may be down, try again later"
        )

    def _move(self, job: ExportJob, expected: Expected, to: JobState) -> None:
        """The one place a job's state changes: checked (``ExportJob.move``), under the lock.
        It keeps the counts by state (per account and in all) that the places are read from."""
        with self._cv:
            before = job.state
            job.move(expected, to)
            counts = self._lane(job).counts
            counts[before] -= 1
            counts[to] += 1
            self._totals[before] -= 1
            self._totals[to] += 1
            self._cv.notify_all()

    def _add_jobs(self, jobs: Iterable[ExportJob], *, first: bool = False) -> None:
        """Take ``jobs`` on (caller holds the lock): counted, queued for creation in
        their order (before the queued ones if ``first``: the halves of a split)."""
        added = list(jobs)
        by_lane: dict[str, list[ExportJob]] = {}
        for job in added:
            lane = self._lane(job)
            by_lane.setdefault(lane.key, []).append(job)
            lane.jobs.append(job)
            lane.counts[job.state] += 1
            self._totals[job.state] += 1
        self._jobs.extend(added)
        for key, queued in by_lane.items():
            lane = self._lanes[key]
            if first:
                lane.queue.extendleft(reversed(queued))
            else:
                lane.queue.extend(queued)

    def _lane(self, job: ExportJob) -> AccountLane:
        """The account ``job`` belongs to ("" is the only provider; so is any account
        when there is only one)."""
        lane = self._lanes.get(job.account)
        if lane is None:
            if len(self._lanes) == 1:
                return next(iter(self._lanes.values()))
            raise ValueError(f"{job.label}: no provider for account '{job.account}'")
        return lane

    def _is_account(self, job: ExportJob, account: str) -> bool:
        """Whether ``job`` is of ``account`` as its provider names it (case aside)."""
        lane = self._lane(job)
        name = job.account or lane.key or getattr(lane.provider, "account", "")
        return str(name).casefold() == account.casefold()

    def _sleep_time(self) -> float:
        now = self.clock()
        waiting = [j for j in self._jobs if j.state is JobState.WAITING]
        if any(j.wake_requested for j in waiting):
            return 0.0
        moments = [j.next_check_at for j in waiting]
        queued = False
        for lane in self._lanes.values():
            if lane.failure is None and lane.queue:
                queued = True
                if self._next_creatable_in(lane) is not None:
                    moments.append(lane.creates_blocked_until())
        if not moments:
            return 1.0
        return max(0.0, min(min(moments) - now, 1.0 if queued else 60.0))

    def _next_creatable(self, now: float) -> ExportJob | None:
        """The job to create now across the accounts, or None (caller holds the lock):
        of the accounts whose creates are not held back, the oldest window that fits."""
        best: ExportJob | None = None
        for lane in self._lanes.values():
            if lane.failure is not None or now < lane.creates_blocked_until():
                continue
            job = self._next_creatable_in(lane)
            if job is not None and (best is None or _creation_order(job) < _creation_order(best)):
                best = job
        return best

    def _next_creatable_in(self, lane: AccountLane) -> ExportJob | None:
        """The account's next job to create now, or None (caller holds the lock).

        Normally its queue's head, while places are free (the account's and, with
        ``max_concurrent_total``, all accounts'). When only the files held for the
        consumer fill the places, a window the consumer needs BEFORE one of those READY
        ones may still go (adopted exports can be READY far ahead of windows still to
        create: holding those back would wait forever)."""
        head = lane.next_queued()
        if head is None:
            return None
        in_flight = lane.in_flight()
        if in_flight >= self.max_concurrent:
            return None
        total = sum(self._totals[s] for s in IN_FLIGHT)
        if self.max_total is not None and total >= self.max_total:
            return None
        held_ok = in_flight + lane.counts[JobState.READY] < 2 * self.max_concurrent and (
            self.max_total is None or total + self._totals[JobState.READY] < 2 * self.max_total
        )
        if held_ok:
            return head
        ready_ahead: dict[str, datetime] = {}
        for j in lane.jobs:
            if j.state is JobState.READY:
                latest = ready_ahead.get(j.stream.name)
                ready_ahead[j.stream.name] = j.window.start if latest is None else max(latest, j.window.start)
        for j in lane.queue:
            if j.state is JobState.QUEUED and j.window.start < ready_ahead.get(j.stream.name, j.window.start):
                return j
        return None

    def _create_due(self) -> None:
        while True:
            with self._cv:
                now = self.clock()
                job = None if self._stopped else self._next_creatable(now)
                if job is None:
                    return
                lane = self._lane(job)
            try:
                if not self._available_now(lane):
                    continue  # its account waits for its hours; the others go on
            except OutsideExportHours as exc:
                self._fail_account(lane, exc)
                continue
            with self._cv:
                if not job.in_state(JobState.QUEUED):  # cancelled meanwhile
                    continue
                self._move(job, JobState.QUEUED, JobState.CREATING)
                if job.first_attempt_at is None:
                    job.first_attempt_at = now
            try:
                status = self._create(job, lane.provider)
            except ExportsBusy as busy:
                self._refused(job, lane, busy)
                continue
            except UserError as exc:
                self._failed(job, exc, JobState.CREATING)
                continue
            with self._cv:
                lane.refusals.accepted()
                if lane.queue and lane.queue[0] is job:
                    lane.queue.popleft()
                if job.state is not JobState.CREATING:
                    # cancelled while the create was in flight: the export runs out on
                    # the provider; it must not take a place nor be downloaded
                    LOGGER.info(
                        "%s: export %s was created for a window no longer needed; left alone",
                        job.label,
                        status.export_id,
                    )
                    continue
                job.status = status
                job.created_at = self.clock()
                job.created_wall = self.wall_clock()
                self._exports_changed = True
                job.next_check_at = job.created_at + (
                    self.poll_max_interval if self.webhook_active else self.poll_interval
                )
                if status.phase is ExportPhase.DONE:
                    self._start_download(job, status, JobState.CREATING)
                else:
                    self._move(job, JobState.CREATING, JobState.WAITING)
            LOGGER.info("%s: created export %s (status %s)", job.label, status.export_id, status.raw_status)

    def _refused(self, job: ExportJob, lane: AccountLane, busy: ExportsBusy) -> None:
        """A 503 on create: every create of the account waits on one clock; past
        ``export_timeout`` of refusals, every stream of the account still waiting to
        create stops (other accounts have clocks of their own)."""
        with self._cv:
            if job.state is JobState.CREATING:
                self._move(job, JobState.CREATING, JobState.QUEUED)
            now = self.clock()
            delay = lane.refusals.refused(now, busy.retry_after, busy.reason)
            refusing = lane.refusals.refusing_for(now)
            give_up = refusing + delay > self.export_timeout
        whose = f" for account '{_account_name(lane)}'" if len(self._lanes) > 1 else ""
        if not give_up:
            LOGGER.info(
                "%s: the provider refused to create the export (%s); every create%s waits %.1fs",
                job.label,
                busy.describe(),
                whose,
                delay,
            )
            return
        LOGGER.warning(
            "the provider has refused to create exports%s for %.0fs (%s); giving up on the "
            "streams still waiting to create one",
            whose,
            refusing,
            busy.describe(),
        )
        with self._cv:
            heads: dict[str, ExportJob] = {}
            for queued in lane.jobs:
                if queued.state is JobState.QUEUED and queued.stream.name not in heads:
                    heads[queued.stream.name] = queued
        for head in sorted(heads.values(), key=_creation_order):
            self._finish_failed(
                head,
                ExportFailed(
                    f"{head.label}: the provider refused to create exports for {refusing:.0f}s "
                    f"({busy.describe()}) and the next try would pass 'export_timeout' "
                    f"({self.export_timeout:g}s); run the tap again later or raise 'export_timeout'"
                ),
                JobState.QUEUED,
            )

    def _available_now(self, lane: AccountLane) -> bool:
        """Whether the account's provider takes exports now; if not, its creates wait
        until its hours open (or :class:`OutsideExportHours` with ``outside_hours: stop``)."""
        availability = lane.provider.availability(self.wall_clock())
        if availability.open:
            return True
        opens = availability.opens_at
        when = opens.strftime("%Y-%m-%d %H:%M UTC") if opens else "an unknown time"
        if self.outside_hours == "stop":
            raise OutsideExportHours(
                f"{availability.description}; it is outside them now. Exports open again at "
                f"{when}: run the tap then, or set outside_hours to 'wait'"
            )
        if lane.hours_logged_until != opens:
            LOGGER.warning("%s; waiting until %s to create exports", availability.description, when)
            lane.hours_logged_until = opens
        delay = (opens - self.wall_clock()).total_seconds() if opens else self.poll_max_interval
        with self._cv:
            lane.hours_blocked_until = self.clock() + max(1.0, min(delay, 300.0))
        return False

    def _poll_due(self) -> None:
        with self._cv:
            now = self.clock()
            due = [
                j
                for j in self._jobs
                if j.state is JobState.WAITING and (j.next_check_at <= now or j.wake_requested)
            ]
            for job in due:
                job.wake_requested = False  # this check answers it; a later wake asks again
        for job in due:
            if self._stopped:
                return
            if not job.in_state(JobState.WAITING):  # e.g. its account failed meanwhile
                continue
            assert job.export_id is not None
            try:
                status = self._lane(job).provider.get_export(job.export_id)
            except ExportGone:
                self._replace(
                    job,
                    JobState.WAITING,
                    "from the last run is gone"
                    if job.adopted
                    else "is gone (the provider no longer knows it)",
                )
                continue
            except UserError as exc:
                self._failed(job, exc, JobState.WAITING)
                continue
            with self._cv:
                if job.state is not JobState.WAITING:  # cancelled while the check was in flight
                    continue
            job.checks += 1
            now = self.clock()
            elapsed = job.elapsed(now)
            if status.phase is ExportPhase.DONE:
                LOGGER.info(
                    "%s: export %s is %s after %.0fs", job.label, status.export_id, status.raw_status, elapsed
                )
                with self._cv:
                    if job.state is JobState.WAITING:
                        self._start_download(job, status, JobState.WAITING)
            elif status.phase is ExportPhase.FAILED:
                self._export_failed(job, status)
            elif elapsed > self.export_timeout:
                self._finish_failed(
                    job,
                    ExportFailed(
                        f"{job.label}: export {status.export_id} is still '{status.raw_status}' after "
                        f"{elapsed:.0f}s (export_timeout); the stream stops here and its bookmark stays"
                    ),
                    JobState.WAITING,
                )
            else:
                delay = (
                    self.poll_max_interval
                    if self.webhook_active
                    else next_poll_delay(elapsed, self.poll_interval, self.poll_max_interval)
                )
                percent = f" {status.percent_complete}%" if status.percent_complete is not None else ""
                LOGGER.info(
                    "%s: export %s is %s%s, %.0fs elapsed, next check in %.0fs",
                    job.label,
                    status.export_id,
                    status.raw_status,
                    percent,
                    elapsed,
                    delay,
                )
                with self._cv:
                    job.status = status
                    job.next_check_at = now + delay

    def _failed(self, job: ExportJob, exc: BaseException, expected: Expected) -> None:
        """A provider call for ``job`` failed with ``exc``: the one place that decides
        whether that ends its account (:func:`is_account_failure`) or its window."""
        if is_account_failure(exc):
            self._fail_account(self._lane(job), exc)
        else:
            self._finish_failed(job, exc, expected)

    def _fail_account(self, lane: AccountLane, exc: BaseException) -> None:
        """The account can't go on (bad token, settings, closed hours): every job of it
        that has not finished FAILS with ``exc``; its READY ones are still emitted. The
        other accounts go on."""
        with self._cv:
            first = lane.failure is None
            if first:
                lane.failure = exc
            error = lane.failure
            stopped = 0
            for job in lane.jobs:
                if job.state in (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING):
                    job.error = error
                    self._move(job, job.state, JobState.FAILED)
                    stopped += 1
            lane.queue.clear()
        if first and len(self._lanes) > 1:
            LOGGER.info(
                "account '%s' failed: its %d export(s) not yet done stop", _account_name(lane), stopped
            )

    def _finish_failed(self, job: ExportJob, exc: BaseException, expected: Expected) -> None:
        """Fail ``job`` if it is still in ``expected``: a job cancelled meanwhile stays
        cancelled (its stream already stopped earlier, or the sync did)."""
        with self._cv:
            allowed = (expected,) if isinstance(expected, JobState) else tuple(expected)
            if job.state not in allowed:
                return
            job.error = exc
            self._move(job, allowed, JobState.FAILED)
            queue = self._lane(job).queue
            if queue and queue[0] is job:
                queue.popleft()
            self._abandon_after(job)
        LOGGER.error("%s", exc)

    def _abandon_after(self, job: ExportJob) -> None:
        """The pair (stream, account) stops at ``job``'s window: its later windows are
        never emitted, so they must not be created, polled, or hold a place (caller holds
        the lock)."""
        for later in self._lane(job).jobs:  # by window, not seq: a split window's halves share its seq
            if later.pair != job.pair or later.window.start < job.window.end:
                continue
            later.abandoned = True
            if later.state in (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.READY):
                self._move(later, later.state, JobState.CANCELLED)
                later.release()
            # DOWNLOADING ones are cancelled when their download ends (_download_job)

    # ---------------------------------------------------------------- downloads
    def _start_download(self, job: ExportJob, status: ExportStatus, expected: JobState) -> None:
        with self._cv:
            job.status = status
            self._move(job, expected, JobState.DOWNLOADING)
            job.download_started_at = self.clock()
        self._job_pool.submit(self._download_job, job)

    def _download_job(self, job: ExportJob) -> None:
        try:
            status = job.status
            assert status is not None
            job.workdir = self.workdir / f"job-{id(job):x}"
            job.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            provider = self._lane(job).provider
            urls = provider.file_urls(status)
            lock = threading.Lock()
            current = list(urls)
            refreshes = 0

            def fresh_url(index: int, stale: str) -> str:
                nonlocal current, refreshes
                with lock:
                    if current[index] == stale:
                        refreshes += 1
                        if refreshes > self.url_refreshes * max(1, len(urls)):
                            raise ExportFailed(
                                f"{job.label}: the file URLs of export {job.export_id} keep "
                                "expiring; try again"
                            )
                        current = provider.file_urls(status, refresh=True)
                        if len(current) != len(urls):
                            raise ExportFailed(f"{job.label}: export {job.export_id} changed its file list")
                    return current[index]

            ext = provider.facts.extension
            paths = [job.workdir / f"part-{i:05d}.{ext}" for i in range(len(urls))]
            if len(urls) <= 1:
                sizes = [self._download_file(job, i, urls[i], paths[i], fresh_url) for i in range(len(urls))]
            else:
                futures = [
                    self._file_pool.submit(self._download_file, job, i, urls[i], paths[i], fresh_url)
                    for i in range(len(urls))
                ]
                sizes = [f.result() for f in futures]
            with self._cv:
                if job.state is not JobState.DOWNLOADING:  # failed or stopped meanwhile
                    job.release()
                    return
                job.files = paths
                job.bytes_downloaded = sum(sizes)
                abandoned = job.abandoned
                self._move(job, JobState.DOWNLOADING, JobState.CANCELLED if abandoned else JobState.READY)
            if abandoned:
                job.release()
                return
            LOGGER.info("%s: downloaded %d file(s), %d bytes", job.label, len(paths), sum(sizes))
        except UserError as exc:
            if job.adopted and not is_account_failure(exc):  # e.g. its files were deleted since
                self._replace(job, JobState.DOWNLOADING, f"from the last run can't be downloaded ({exc})")
                return
            self._failed(job, exc, JobState.DOWNLOADING)
        except BaseException as exc:  # noqa: BLE001
            self._finish_failed(
                job, ExportFailed(f"{job.label}: download failed: {exc}"), JobState.DOWNLOADING
            )

    def _download_file(
        self, job: ExportJob, index: int, url: str, dest: Path, fresh_url: Callable[[int, str], str]
    ) -> int:
        failures = 0
        while True:
            if self._stopped:
                raise ExportFailed(f"{job.label}: sync stopped")
            try:
                return self.downloader.download(url, dest, self.downloader.budget_for(job))
            except UrlExpired as exc:
                LOGGER.info("%s: %s; asking for a fresh URL", job.label, exc)
                url = fresh_url(index, url)
            except (TruncatedDownload, DownloadError) as exc:
                failures += 1
                if failures >= self.download_attempts:
                    raise ExportFailed(
                        f"{job.label}: file {index + 1} of export {job.export_id} failed "
                        f"{failures} times ({exc})"
                    ) from None
                LOGGER.warning("%s: %s; retrying (%d/%d)", job.label, exc, failures, self.download_attempts)
                self.downloader.sleep(self.retry_pause * failures)


def _creation_order(job: ExportJob) -> tuple[int, str, str]:
    """Oldest windows first, across streams and accounts."""
    return job.seq, job.stream.name, job.account


def _account_name(lane: AccountLane) -> str:
    return lane.key or str(getattr(lane.provider, "account", ""))


def _expand_split_head(pending: deque[ExportJob]) -> None:
    """A SPLIT job at the head gives its place to its halves, first half first."""
    while pending[0].state is JobState.SPLIT and pending[0].parts:
        pending.extendleft(reversed(pending.popleft().parts or ()))


def _failed_with_account(queue: deque[ExportJob] | None) -> deque[ExportJob]:
    """What is left to yield of a pair after its account failed: its FAILED jobs."""
    rest: deque[ExportJob] = deque()
    todo = deque(queue or ())
    while todo:
        job = todo.popleft()
        if job.state is JobState.SPLIT and job.parts:
            todo.extendleft(reversed(job.parts))
        elif job.state is JobState.FAILED:
            rest.append(job)
    return rest


def _halves(window: Window, smallest: timedelta | None) -> tuple[Window, Window] | None:
    """``window`` cut in two at a whole second, or None below ``smallest`` (or no split)."""
    if smallest is None:
        return None
    half = timedelta(seconds=int((window.end - window.start).total_seconds() // 2))
    if half < smallest or half <= timedelta(0):
        return None
    middle = window.start + half
    return Window(window.start, middle), Window(middle, window.end)
