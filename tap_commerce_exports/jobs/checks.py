"""Checking exports: status checks when due, DONE to the fetcher, failures and splits.

Why a part of its own: a pending export is looked at when its check is due (sooner for a
webhook's wake-up); a DONE one goes to the file fetcher; a failed one gets its retries,
then its window is split (at once when its pair already had to split one: its failures
are about size, ``jobs/spans.py``); one that outlives ``export_timeout`` fails its window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from tap_commerce_exports.errors import ExportFailed, UserError
from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.fetcher import FileFetcher
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.polling import next_poll_delay
from tap_commerce_exports.jobs.requests import RequestRunner
from tap_commerce_exports.jobs.saved_exports import not_the_windows
from tap_commerce_exports.jobs.spans import SpanMemory
from tap_commerce_exports.providers.base import ExportGone, ExportPhase, ExportStatus
from tap_commerce_exports.windows import split_window

LOGGER = logging.getLogger("tap_commerce_exports.jobs")


class ChecksMixin:
    """Status checks (part of ExportScheduler, on the engine thread and its request runner)."""

    board: JobBoard
    fetcher: FileFetcher
    spans: SpanMemory
    runner: RequestRunner
    clock: Callable[[], float]
    poll_interval: float
    poll_max_interval: float
    webhook_active: bool
    export_timeout: float
    export_attempts: int
    min_split_span: timedelta | None
    planned_span: timedelta

    def _poll_due(self) -> None:
        board = self.board
        with board.cv:
            due = board.take_due_checks(self.clock(), limit=self.runner.free())
        for job in due:
            if board.stopped:
                return
            if not job.in_state(JobState.WAITING):  # e.g. its account failed meanwhile
                continue
            self.runner.submit(self._check, job)

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
        now = self.clock()
        elapsed = job.elapsed(now)
        if status.phase is ExportPhase.DONE:
            LOGGER.info(
                "%s: export %s is %s after %.0fs", job.label, status.export_id, status.raw_status, elapsed
            )
            with board.cv:
                if job.state is JobState.WAITING:
                    self.fetcher.start(job, status)
                    self._succeeded(job)
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
                if job.state is JobState.WAITING:
                    board.apply(job, partial(job.checked, status, now + delay))

    def _export_failed(self, job: ExportJob, status: ExportStatus) -> None:
        """An export ended failed: retry it while the budget lasts, then split the window
        (WAITING -> SPLIT), or fail the stream once its window can't be split. A pair
        that already had to split a window splits at the first failure: its failures are
        about size, and a retry at the same span fails alike (``jobs/spans.py``)."""
        board = self.board
        with board.cv:
            job.ended_failed()
        ended = f"export {status.export_id} ended with status '{status.raw_status}'"
        if job.adopted and job.failures == 1:
            board.requeue(job, JobState.WAITING, f"from the last run ended with status '{status.raw_status}'")
            return
        halves = split_window(job.window, self.min_split_span)
        at_once = halves is not None and self.spans.splits_at_once(job.pair)
        if job.failures < self.export_attempts and not at_once:
            board.requeue(
                job,
                JobState.WAITING,
                f"ended with status '{status.raw_status}' (attempt {job.failures} of {self.export_attempts})",
            )
            return
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
            self.spans.failed_past_budget(job.pair, job.window.end - job.window.start)
            board.apply(job, partial(job.split, halves, JobState.WAITING))
            board.add(job.parts or (), first=True)
            board.exports_changed = True
        LOGGER.warning(
            "%s: %s %d time(s); splitting the window into %s and %s",
            job.label,
            ended,
            job.failures,
            halves[0],
            halves[1],
        )

    def _succeeded(self, job: ExportJob) -> None:
        """``job``'s export is DONE: its span works (caller holds the lock)."""
        self.spans.succeeded(job.pair, job.window.end - job.window.start, self.planned_span)
