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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tap_commerce_exports.errors import AuthError, ConfigError, ExportFailed, UserError
from tap_commerce_exports.http.download import (
    DownloadError,
    FileDownloader,
    TruncatedDownload,
    UrlExpired,
)
from tap_commerce_exports.jobs.create_refusals import CreateRefusals
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


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ExportOrchestrator:
    """Owns every export job of a sync."""

    download_attempts = 5
    url_refreshes = 3
    retry_pause = 0.5
    #: Creates whose answer may be lost in a row before the window fails.
    lost_create_attempts = 3

    def __init__(
        self,
        provider: ExportProvider,
        *,
        workdir: Path,
        max_concurrent_exports: int,
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
        self.provider = provider
        self.workdir = workdir
        self.max_concurrent = max_concurrent_exports
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.export_timeout = export_timeout
        self.outside_hours = outside_hours
        self.webhook_active = webhook_active
        self.downloader = downloader or FileDownloader()
        self.clock = clock
        self.wall_clock = wall_clock or (lambda: utcnow())  # late-bound: tests patch utcnow
        self._ext = provider.facts.extension
        self._cv = threading.Condition()
        self._jobs: list[ExportJob] = []
        self._queue: deque[ExportJob] = deque()
        self._fatal: BaseException | None = None
        self._stopped = False
        self._create_blocked_until = 0.0  # the provider's published hours are closed
        self._refusals = CreateRefusals(base=poll_interval)  # this account's 503s on create
        self._hours_logged_until: datetime | None = None
        self._job_pool = cf.ThreadPoolExecutor(max(1, max_concurrent_exports), "export-download")
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
        """Start all ``jobs``; yield each once READY or FAILED, in its stream's window order.

        The caller emits a READY job's files, then asks for the next one; the job's files
        are removed when the caller comes back (or when the sync stops). After a stream's
        job FAILED, that stream's later jobs are cancelled and never yielded. A SPLIT
        job's halves are yielded in its place, first half first.

        ``on_exports`` is called on the caller's thread (between yields, without the
        lock) soon after an export was created, adopted, replaced or split, so the
        caller can save :meth:`exports_in_flight` before waiting on them.
        """
        ordered = sorted(jobs, key=lambda j: (j.seq, j.stream.name))
        per_stream: dict[str, deque[ExportJob]] = {}
        for each in sorted(ordered, key=lambda j: j.seq):
            per_stream.setdefault(each.stream.name, deque()).append(each)
        with self._cv:
            self._jobs = ordered
            self._queue = deque(ordered)
        self._thread = threading.Thread(target=self._loop, name="export-orchestrator", daemon=True)
        self._thread.start()
        try:
            while per_stream:
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
                        for pending in per_stream.values():
                            while pending[0].state is JobState.SPLIT and pending[0].parts:
                                pending.extendleft(reversed(pending.popleft().parts or ()))
                            head = pending[0]
                            if head.state in (JobState.READY, JobState.FAILED):
                                job = head
                                break
                        if job is None:
                            # Short: this is the main thread, and a SIGTERM the kernel hands
                            # to another thread is only acted on when the main one wakes.
                            self._cv.wait(0.1)
                    per_stream[job.stream.name].popleft()
                try:
                    yield job
                finally:
                    job.release()
                    with self._cv:
                        queue = per_stream.get(job.stream.name)
                        if job.state is JobState.FAILED:
                            # the caller or the engine failed this window: later windows of
                            # the stream must not be emitted (the bookmark can't pass this one)
                            self._abandon_after(job)
                            per_stream.pop(job.stream.name, None)
                        else:
                            if job.state is JobState.READY:  # (stop() may have cancelled it)
                                self._move(job, JobState.READY, JobState.CONSUMED)
                            if queue is not None and not queue:
                                per_stream.pop(job.stream.name, None)
                        self._cv.notify_all()
        finally:
            self.stop()

    def exports_in_flight(self, *, besides: ExportJob | None = None) -> list[ExportJob]:
        """Jobs whose export exists and whose records were not emitted yet (window order).

        What a rerun can adopt: at most ``2 * max_concurrent_exports`` of them (the
        places in flight plus the READY ones held for the consumer).
        """
        with self._cv:
            return [
                j
                for j in self._jobs
                if j is not besides
                and j.export_id is not None
                and j.state in (JobState.WAITING, JobState.DOWNLOADING, JobState.READY)
            ]

    def wake(self, export_id: str) -> bool:
        """Check this export now (the webhook said it is ready). False if unknown.

        The request lives on the job and ends with its WAITING (see ``ExportJob.move``):
        one that comes while the export's status is being read asks for one more read.
        """
        with self._cv:
            for job in self._jobs:
                if job.export_id == export_id:
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
        """Windows with no saved export: a provider that lists its exports may still show
        one an earlier run made for it within ``export_timeout`` (that run's STATE never
        reached the state backend, e.g. a target keeps STATE until it writes records).
        One still running is followed like a saved one; a finished one is not (it may be
        another run's, made under other settings, long read): a new export is cheaper
        than a wrong one. One list per export type."""
        if not self.provider.can_find_exports:
            return
        with self._cv:
            todo = [j for j in self._jobs if j.adopt_id is None and j.state is JobState.QUEUED]
        since = self.wall_clock() - timedelta(seconds=self.export_timeout)
        listed: dict[str, list[FoundExport]] = {}
        for job in todo:
            export_type = job.stream.export_type
            if export_type not in listed:
                try:
                    listed[export_type] = self.provider.recent_exports(export_type, since)
                except UserError as exc:
                    if _is_fatal(exc):
                        raise
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
            self._queue.appendleft(job)
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
                ExportJob(stream=job.stream, window=halves[0], seq=job.seq),
                ExportJob(stream=job.stream, window=halves[1], seq=job.seq),
            )
            job.parts = parts
            self._move(job, JobState.WAITING, JobState.SPLIT)
            self._jobs.extend(parts)
            self._queue.extendleft(reversed(parts))
            self._exports_changed = True
        LOGGER.warning(
            "%s: %s %d times; splitting the window into %s and %s",
            job.label,
            ended,
            job.failures,
            halves[0],
            halves[1],
        )

    def _create(self, job: ExportJob) -> ExportStatus:
        """Create the window's export; a create whose answer was lost is looked up
        before it is sent again, so one lost answer never leaves two exports."""
        export_type, window = job.stream.export_type, job.window
        for attempt in range(1, self.lost_create_attempts + 1):
            since = self.wall_clock() - CLOCK_SKEW  # the provider's clock may be behind ours
            try:
                return self.provider.create_export(export_type, window)
            except CreateAnswerLost as lost:
                if not self.provider.can_find_exports:
                    LOGGER.warning(
                        "%s: creating the export got no answer (%s); this provider can't list "
                        "its exports, so creating it again may leave a second one running unused",
                        job.label,
                        lost.reason,
                    )
                else:
                    found = self.provider.find_export(export_type, window, since)
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
        """The one place a job's state changes: checked (``ExportJob.move``), under the lock."""
        with self._cv:
            job.move(expected, to)
            self._cv.notify_all()

    def _sleep_time(self) -> float:
        now = self.clock()
        waiting = [j for j in self._jobs if j.state is JobState.WAITING]
        if any(j.wake_requested for j in waiting):
            return 0.0
        moments = [j.next_check_at for j in waiting]
        if self._queue and self._next_creatable() is not None:
            moments.append(max(self._create_blocked_until, self._refusals.blocked_until))
        if not moments:
            return 1.0
        return max(0.0, min(min(moments) - now, 1.0 if self._queue else 60.0))

    def _has_capacity(self) -> bool:
        in_flight = sum(1 for j in self._jobs if j.state in IN_FLIGHT)
        held = sum(1 for j in self._jobs if j.state is JobState.READY)
        return in_flight < self.max_concurrent and in_flight + held < 2 * self.max_concurrent

    def _next_queued(self) -> ExportJob | None:
        while self._queue and self._queue[0].state is not JobState.QUEUED:
            self._queue.popleft()
        return self._queue[0] if self._queue else None

    def _next_creatable(self) -> ExportJob | None:
        """The next job to create now, or None (caller holds the lock).

        Normally the queue's head, while places are free. When only the files held for
        the consumer fill the places, a window the consumer needs BEFORE one of those
        READY ones may still go (adopted exports can be READY far ahead of windows still
        to create: holding those back would wait forever)."""
        head = self._next_queued()
        if head is None or self._has_capacity():
            return head
        if sum(1 for j in self._jobs if j.state in IN_FLIGHT) >= self.max_concurrent:
            return None
        ready_ahead: dict[str, datetime] = {}
        for j in self._jobs:
            if j.state is JobState.READY:
                latest = ready_ahead.get(j.stream.name)
                ready_ahead[j.stream.name] = j.window.start if latest is None else max(latest, j.window.start)
        for j in self._queue:
            if j.state is JobState.QUEUED and j.window.start < ready_ahead.get(j.stream.name, j.window.start):
                return j
        return None

    def _create_due(self) -> None:
        while True:
            with self._cv:
                job = self._next_creatable()
                if self._stopped or job is None:
                    return
                now = self.clock()
                if job is None or now < max(self._create_blocked_until, self._refusals.blocked_until):
                    return
            if not self._available_now():
                return
            with self._cv:
                if not job.in_state(JobState.QUEUED):  # cancelled meanwhile
                    continue
                self._move(job, JobState.QUEUED, JobState.CREATING)
                if job.first_attempt_at is None:
                    job.first_attempt_at = now
            try:
                status = self._create(job)
            except ExportsBusy as busy:
                self._refused(job, busy)
                return
            except UserError as exc:
                if _is_fatal(exc):
                    raise
                self._finish_failed(job, exc, JobState.CREATING)
                continue
            with self._cv:
                self._refusals.accepted()
                if self._queue and self._queue[0] is job:
                    self._queue.popleft()
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

    def _refused(self, job: ExportJob, busy: ExportsBusy) -> None:
        """A 503 on create: every create of the account waits on one clock; past
        ``export_timeout`` of refusals, every stream still waiting to create stops."""
        with self._cv:
            if job.state is JobState.CREATING:
                self._move(job, JobState.CREATING, JobState.QUEUED)
            now = self.clock()
            delay = self._refusals.refused(now, busy.retry_after, busy.reason)
            refusing = self._refusals.refusing_for(now)
            give_up = refusing + delay > self.export_timeout
        if not give_up:
            LOGGER.info(
                "%s: the provider refused to create the export (%s); every create waits %.1fs",
                job.label,
                busy.describe(),
                delay,
            )
            return
        LOGGER.warning(
            "the provider has refused to create exports for %.0fs (%s); giving up on the "
            "streams still waiting to create one",
            refusing,
            busy.describe(),
        )
        with self._cv:
            heads: dict[str, ExportJob] = {}
            for queued in self._jobs:
                if queued.state is JobState.QUEUED and queued.stream.name not in heads:
                    heads[queued.stream.name] = queued
        for head in sorted(heads.values(), key=lambda j: (j.seq, j.stream.name)):
            self._finish_failed(
                head,
                ExportFailed(
                    f"{head.label}: the provider refused to create exports for {refusing:.0f}s "
                    f"({busy.describe()}) and the next try would pass 'export_timeout' "
                    f"({self.export_timeout:g}s); run the tap again later or raise 'export_timeout'"
                ),
                JobState.QUEUED,
            )

    def _available_now(self) -> bool:
        availability = self.provider.availability(self.wall_clock())
        if availability.open:
            return True
        opens = availability.opens_at
        when = opens.strftime("%Y-%m-%d %H:%M UTC") if opens else "an unknown time"
        if self.outside_hours == "stop":
            raise UserError(
                f"{availability.description}; it is outside them now. Exports open again at "
                f"{when}: run the tap then, or set outside_hours to 'wait'"
            )
        if self._hours_logged_until != opens:
            LOGGER.warning("%s; waiting until %s to create exports", availability.description, when)
            self._hours_logged_until = opens
        delay = (opens - self.wall_clock()).total_seconds() if opens else self.poll_max_interval
        with self._cv:
            self._create_blocked_until = self.clock() + max(1.0, min(delay, 300.0))
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
            assert job.export_id is not None
            try:
                status = self.provider.get_export(job.export_id)
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
                if _is_fatal(exc):
                    raise
                self._finish_failed(job, exc, JobState.WAITING)
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

    def _finish_failed(self, job: ExportJob, exc: BaseException, expected: Expected) -> None:
        """Fail ``job`` if it is still in ``expected``: a job cancelled meanwhile stays
        cancelled (its stream already stopped earlier, or the sync did)."""
        with self._cv:
            allowed = (expected,) if isinstance(expected, JobState) else tuple(expected)
            if job.state not in allowed:
                return
            job.error = exc
            self._move(job, allowed, JobState.FAILED)
            if self._queue and self._queue[0] is job:
                self._queue.popleft()
            self._abandon_after(job)
        LOGGER.error("%s", exc)

    def _abandon_after(self, job: ExportJob) -> None:
        """The stream stops at ``job``'s window: its later windows are never emitted, so
        they must not be created, polled, or hold a place (caller holds the lock)."""
        for later in self._jobs:  # by window, not seq: a split window's halves share its seq
            if later.stream.name != job.stream.name or later.window.start < job.window.end:
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
            urls = self.provider.file_urls(status)
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
                        current = self.provider.file_urls(status, refresh=True)
                        if len(current) != len(urls):
                            raise ExportFailed(f"{job.label}: export {job.export_id} changed its file list")
                    return current[index]

            paths = [job.workdir / f"part-{i:05d}.{self._ext}" for i in range(len(urls))]
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
            if _is_fatal(exc):
                self._fail_all(exc)
            elif job.adopted:  # e.g. its files were deleted since the last run
                self._replace(job, JobState.DOWNLOADING, f"from the last run can't be downloaded ({exc})")
                return
            self._finish_failed(job, exc, JobState.DOWNLOADING)
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


def _is_fatal(exc: BaseException) -> bool:
    """Errors that no other stream can avoid either (credentials, settings)."""
    return isinstance(exc, (AuthError, ConfigError))


def _halves(window: Window, smallest: timedelta | None) -> tuple[Window, Window] | None:
    """``window`` cut in two at a whole second, or None below ``smallest`` (or no split)."""
    if smallest is None:
        return None
    half = timedelta(seconds=int((window.end - window.start).total_seconds() // 2))
    if half < smallest or half <= timedelta(0):
        return None
    middle = window.start + half
    return Window(window.start, middle), Window(middle, window.end)
