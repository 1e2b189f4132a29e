"""The create/poll scheduler: the engine thread that moves exports along.

Why one thread for all of it: creates and status checks are small requests whose
timing is the whole point (when to create, when to look again, when to give up), and
one loop over every job keeps that timing in one place: it follows the exports saved
by the last run (or listed by the provider) instead of creating new ones, creates what
the capacity tracker lets through (oldest windows first), checks every pending export
when it is due (sooner for a webhook's wake-up), hands DONE ones to the file fetcher,
gives a failed export its retries, then splits its window in two, and fails a window
whose export outlives ``export_timeout``. It sleeps until the next thing is due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from tap_commerce_exports.errors import ExportFailed, UserError
from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.capacity import Capacity, creation_order
from tap_commerce_exports.jobs.failures import OutsideExportHours
from tap_commerce_exports.jobs.fetcher import FileFetcher
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.polling import next_poll_delay
from tap_commerce_exports.jobs.saved_exports import adopt_saved, find_listed, not_the_windows
from tap_commerce_exports.providers.base import (
    CreateAnswerLost,
    ExportGone,
    ExportPhase,
    ExportProvider,
    ExportsBusy,
    ExportStatus,
)
from tap_commerce_exports.windows import split_window

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: How far the provider's clock may be behind ours when its created_at is compared.
CLOCK_SKEW = timedelta(minutes=10)
#: Longest sleep while creates are queued (a place may free up without a wake-up).
QUEUED_RECHECK = 1.0
#: Longest sleep with nothing queued.
IDLE_RECHECK = 60.0

#: The engine's idle wait: ``wait(condition, seconds)``, the condition's lock held.
Wait = Callable[[threading.Condition, float], object]


def wait_on_condition(condition: threading.Condition, seconds: float) -> object:
    return condition.wait(seconds)


class ExportScheduler:
    """Creates, follows and polls exports; runs on the engine thread (:meth:`loop`)."""

    def __init__(
        self,
        board: JobBoard,
        capacity: Capacity,
        fetcher: FileFetcher,
        *,
        poll_interval: float,
        poll_max_interval: float,
        export_timeout: float,
        webhook_active: bool,
        export_attempts: int,
        min_split_span: timedelta | None,
        lost_create_attempts: int,
        retry_pause: float,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        wait: Wait = wait_on_condition,
    ) -> None:
        self.board = board
        self.capacity = capacity
        self.fetcher = fetcher
        self.poll_interval = poll_interval
        self.poll_max_interval = poll_max_interval
        self.export_timeout = export_timeout
        self.webhook_active = webhook_active
        self.export_attempts = max(1, export_attempts)
        self.min_split_span = min_split_span  # None: a failing window is never split
        self.lost_create_attempts = lost_create_attempts
        self.retry_pause = retry_pause
        self.clock = clock
        self.wall_clock = wall_clock
        self.wait = wait
        self.adopted = 0  # exports followed from saved state, this run

    # ------------------------------------------------------------------ the loop
    def loop(self) -> None:
        board = self.board
        try:
            find_listed(self.board, self.wall_clock, self.export_timeout)
            self.adopted += adopt_saved(self.board, self.clock, self.wall_clock)
            while True:
                with board.cv:
                    if board.stopped:
                        return
                self._create_due()
                self._poll_due()
                with board.cv:
                    if board.stopped:  # stop() may have set it meanwhile
                        return  # type: ignore[unreachable]
                    if not any(j.state in (JobState.QUEUED, JobState.WAITING) for j in board.jobs):
                        self.wait(board.cv, QUEUED_RECHECK)
                        continue
                    self.wait(board.cv, self._sleep_time())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer thread
            board.fail_all(exc)

    def _sleep_time(self) -> float:
        """Seconds until the next check or create is due (caller holds the lock)."""
        now = self.clock()
        waiting = [j for j in self.board.jobs if j.state is JobState.WAITING]
        if any(j.wake_requested for j in waiting):
            return 0.0
        moments = [j.next_check_at for j in waiting]
        creates, queued = self.capacity.next_create_at()
        moments += creates
        if not moments:
            return QUEUED_RECHECK
        return max(0.0, min(min(moments) - now, QUEUED_RECHECK if queued else IDLE_RECHECK))

    # ------------------------------------------------------------------ creates
    def _create_due(self) -> None:
        board = self.board
        while True:
            with board.cv:
                now = self.clock()
                job = None if board.stopped else self.capacity.next_creatable(now)
                if job is None:
                    return
                lane = board.lane(job)
            try:
                if not self.capacity.open_now(lane):
                    continue  # its account waits for its hours; the others go on
            except OutsideExportHours as exc:
                board.fail_account(lane, exc)
                continue
            with board.cv:
                if not job.in_state(JobState.QUEUED):  # cancelled meanwhile
                    continue
                board.move(job, JobState.QUEUED, JobState.CREATING)
                if job.first_attempt_at is None:
                    job.first_attempt_at = now
            try:
                status = self._create(job, lane.provider)
            except ExportsBusy as busy:
                self._refused(job, lane, busy)
                continue
            except UserError as exc:
                board.failed(job, exc, JobState.CREATING)
                continue
            self._created(job, lane, status)

    def _created(self, job: ExportJob, lane: AccountLane, status: ExportStatus) -> None:
        board = self.board
        with board.cv:
            lane.refusals.accepted()
            if lane.queue and lane.queue[0] is job:
                lane.queue.popleft()
            if job.state is not JobState.CREATING:
                # cancelled while the create was in flight: the export runs out on the
                # provider; it must not take a place nor be downloaded
                LOGGER.info(
                    "%s: export %s was created for a window no longer needed; left alone",
                    job.label,
                    status.export_id,
                )
                return
            job.status = status
            job.created_at = self.clock()
            job.created_wall = self.wall_clock()
            board.exports_changed = True
            job.next_check_at = job.created_at + (
                self.poll_max_interval if self.webhook_active else self.poll_interval
            )
            if status.phase is ExportPhase.DONE:
                self.fetcher.start(job, status, JobState.CREATING)
            else:
                board.move(job, JobState.CREATING, JobState.WAITING)
        LOGGER.info("%s: created export %s (status %s)", job.label, status.export_id, status.raw_status)

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
                self.board.pause(self.retry_pause * attempt)
        raise ExportFailed(
            f"{job.label}: creating the export got no answer {self.lost_create_attempts} times; "
            "the API may be down, try again later"
        )

    def _refused(self, job: ExportJob, lane: AccountLane, busy: ExportsBusy) -> None:
        """A 503 on create: every create of the account waits on one clock; past
        ``export_timeout`` of refusals, every stream of the account still waiting to
        create stops (other accounts have clocks of their own)."""
        board = self.board
        with board.cv:
            if job.state is JobState.CREATING:
                board.move(job, JobState.CREATING, JobState.QUEUED)
            now = self.clock()
            delay = lane.refusals.refused(now, busy.retry_after, busy.reason)
            refusing = lane.refusals.refusing_for(now)
            give_up = refusing + delay > self.export_timeout
        whose = f" for account '{lane.name}'" if len(board.lanes) > 1 else ""
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
        with board.cv:
            heads: dict[str, ExportJob] = {}
            for queued in lane.jobs:
                if queued.state is JobState.QUEUED and queued.stream.name not in heads:
                    heads[queued.stream.name] = queued
        for head in sorted(heads.values(), key=creation_order):
            board.fail_window(
                head,
                ExportFailed(
                    f"{head.label}: the provider refused to create exports for {refusing:.0f}s "
                    f"({busy.describe()}) and the next try would pass 'export_timeout' "
                    f"({self.export_timeout:g}s); run the tap again later or raise 'export_timeout'"
                ),
                JobState.QUEUED,
            )

    # ------------------------------------------------------------------ status checks
    def _poll_due(self) -> None:
        board = self.board
        with board.cv:
            now = self.clock()
            due = [
                j
                for j in board.jobs
                if j.state is JobState.WAITING and (j.next_check_at <= now or j.wake_requested)
            ]
            for job in due:
                job.wake_requested = False  # this check answers it; a later wake asks again
        for job in due:
            if board.stopped:
                return
            if not job.in_state(JobState.WAITING):  # e.g. its account failed meanwhile
                continue
            self._check(job)

    def _check(self, job: ExportJob) -> None:
        board = self.board
        assert job.export_id is not None
        try:
            status = board.lane(job).provider.get_export(job.export_id)
        except ExportGone:
            board.requeue(
                job,
                JobState.WAITING,
                "from the last run is gone" if job.adopted else "is gone (the provider no longer knows it)",
            )
            return
        except UserError as exc:
            board.failed(job, exc, JobState.WAITING)
            return
        with board.cv:
            if job.state is not JobState.WAITING:  # cancelled while the check was in flight
                return
        mismatch = not_the_windows(job, status) if job.adopted else None
        if mismatch is not None:
            board.requeue(job, JobState.WAITING, f"from the last run {mismatch}, not this window's: dropped")
            return
        job.checks += 1
        now = self.clock()
        elapsed = job.elapsed(now)
        if status.phase is ExportPhase.DONE:
            LOGGER.info(
                "%s: export %s is %s after %.0fs", job.label, status.export_id, status.raw_status, elapsed
            )
            with board.cv:
                if job.state is JobState.WAITING:
                    self.fetcher.start(job, status, JobState.WAITING)
        elif status.phase is ExportPhase.FAILED:
            self._export_failed(job, status)
        elif elapsed > self.export_timeout:
            board.fail_window(
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
            with board.cv:
                job.status = status
                job.next_check_at = now + delay

    # ------------------------------------------------------------------ failed exports
    def _export_failed(self, job: ExportJob, status: ExportStatus) -> None:
        """An export ended failed: retry it while the budget lasts, then split the window
        (WAITING -> SPLIT), or fail the stream once its window can't be split."""
        board = self.board
        job.failures += 1
        ended = f"export {status.export_id} ended with status '{status.raw_status}'"
        if job.adopted and job.failures == 1:
            board.requeue(job, JobState.WAITING, f"from the last run ended with status '{status.raw_status}'")
            return
        if job.failures < self.export_attempts:
            board.requeue(
                job,
                JobState.WAITING,
                f"ended with status '{status.raw_status}' (attempt {job.failures} of {self.export_attempts})",
            )
            return
        halves = split_window(job.window, self.min_split_span)
        if halves is None:
            board.fail_window(
                job,
                ExportFailed(
                    f"{job.label}: {ended} ({job.failures} attempts"
                    f"{', and the window is at its smallest span' if self.min_split_span else ''}); "
                    "the stream stops here and its bookmark stays"
                ),
                JobState.WAITING,
            )
            return
        with board.cv:
            if job.state is not JobState.WAITING:
                return
            parts = (
                ExportJob(stream=job.stream, window=halves[0], seq=job.seq, account=job.account),
                ExportJob(stream=job.stream, window=halves[1], seq=job.seq, account=job.account),
            )
            job.parts = parts
            board.move(job, JobState.WAITING, JobState.SPLIT)
            board.add(parts, first=True)
            board.exports_changed = True
        LOGGER.warning(
            "%s: %s %d times; splitting the window into %s and %s",
            job.label,
            ended,
            job.failures,
            halves[0],
            halves[1],
        )
