"""The job board: every job of a sync, the lock they move under, and how they fail.

Why one board: the engine thread, the download pool, the consumer (the Singer layer) and
``stop()`` all move jobs, and a request in flight can come back after another thread
moved its job on. So every state change goes through :meth:`JobBoard.move` (under the
lock, from the state it expects, checked by the job's transition table), and every
failure through :meth:`JobBoard.failed`, the one place that tells an account failure
(the whole account stops; :mod:`jobs.failures`) from a window failure (its (stream,
account) stops at that window). The board also keeps the counts by state, per account
and in all, that the capacity tracker reads.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from tap_commerce_exports.jobs.create_refusals import CreateRefusals
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import IN_FLIGHT, Expected, ExportJob, JobState
from tap_commerce_exports.providers.base import ExportProvider

LOGGER = logging.getLogger("tap_commerce_exports.jobs")

#: Jobs that still need their account's API (an account failure stops them).
_NOT_DONE = (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING)
#: Live jobs that can be cancelled at once (a DOWNLOADING one is, when its download ends).
_CANCELLABLE = (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.READY)


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

    @property
    def name(self) -> str:
        """The account as its provider names it (for messages)."""
        return self.key or str(getattr(self.provider, "account", ""))

    def in_flight(self) -> int:
        return sum(self.counts[s] for s in IN_FLIGHT)

    def creates_blocked_until(self) -> float:
        return max(self.hours_blocked_until, self.refusals.blocked_until)

    def next_queued(self) -> ExportJob | None:
        while self.queue and self.queue[0].state is not JobState.QUEUED:
            self.queue.popleft()
        return self.queue[0] if self.queue else None


class JobBoard:
    """Every job, by account; the lock; the one place jobs move and fail."""

    def __init__(self, lanes: dict[str, AccountLane]) -> None:
        self.cv = threading.Condition()
        self.lanes = lanes
        self.jobs: list[ExportJob] = []
        self.totals: Counter[JobState] = Counter()
        self.stopped = False
        self.fatal: BaseException | None = None  # a bug on an engine thread: ends the run
        self.exports_changed = False  # an export was created, adopted, replaced or split
        self._stopping = threading.Event()

    # ------------------------------------------------------------------ jobs
    def lane(self, job: ExportJob) -> AccountLane:
        """The account ``job`` belongs to ("" is the only provider; so is any account
        when there is only one)."""
        lane = self.lanes.get(job.account)
        if lane is None:
            if len(self.lanes) == 1:
                return next(iter(self.lanes.values()))
            raise ValueError(f"{job.label}: no provider for account '{job.account}'")
        return lane

    def add(self, jobs: Iterable[ExportJob], *, first: bool = False) -> None:
        """Take ``jobs`` on: counted, queued for creation in their order (before the
        queued ones if ``first``: the halves of a split)."""
        added = list(jobs)
        lanes = [self.lane(job) for job in added]  # an unknown account refuses them all
        with self.cv:
            by_lane: dict[str, list[ExportJob]] = {}
            for job, lane in zip(added, lanes, strict=True):
                by_lane.setdefault(lane.key, []).append(job)
                lane.jobs.append(job)
                lane.counts[job.state] += 1
                self.totals[job.state] += 1
            self.jobs.extend(added)
            for key, queued in by_lane.items():
                queue = self.lanes[key].queue
                if first:
                    queue.extendleft(reversed(queued))
                else:
                    queue.extend(queued)

    def move(self, job: ExportJob, expected: Expected, to: JobState) -> None:
        """The one place a job's state changes: checked (``ExportJob.move``), under the
        lock; the counts by state follow, and every waiting thread is woken."""
        with self.cv:
            before = job.state
            job.move(expected, to)
            counts = self.lane(job).counts
            counts[before] -= 1
            counts[to] += 1
            self.totals[before] -= 1
            self.totals[to] += 1
            self.cv.notify_all()

    def requeue(self, job: ExportJob, expected: JobState, why: str) -> None:
        """WAITING/DOWNLOADING -> QUEUED: this window needs a new export (``why`` says
        why); it is created next, before windows after it."""
        with self.cv:
            if job.state is not expected:
                return
            old = job.export_id
            self.move(job, expected, JobState.QUEUED)
            job.status = None
            job.created_at = job.created_wall = job.download_started_at = None
            job.adopted = False
            job.checks = 0
            job.next_check_at = 0.0
            job.release()
            self.lane(job).queue.appendleft(job)
            self.exports_changed = True
        LOGGER.warning("%s: export %s %s; creating a new one", job.label, old, why)

    def is_account(self, job: ExportJob, account: str) -> bool:
        """Whether ``job`` is of ``account`` as its provider names it (case aside)."""
        name = job.account or self.lane(job).name
        return name.casefold() == account.casefold()

    # ------------------------------------------------------------------ failing
    def failed(self, job: ExportJob, exc: BaseException, expected: Expected) -> None:
        """A provider call for ``job`` failed with ``exc``: the one place that decides
        whether that ends its account (:func:`is_account_failure`) or its window."""
        if is_account_failure(exc):
            self.fail_account(self.lane(job), exc)
        else:
            self.fail_window(job, exc, expected)

    def fail_window(self, job: ExportJob, exc: BaseException, expected: Expected) -> None:
        """Fail ``job`` if it is still in ``expected``: a job cancelled meanwhile stays
        cancelled (its stream already stopped earlier, or the sync did)."""
        with self.cv:
            allowed = (expected,) if isinstance(expected, JobState) else tuple(expected)
            if job.state not in allowed:
                return
            job.error = exc
            self.move(job, allowed, JobState.FAILED)
            queue = self.lane(job).queue
            if queue and queue[0] is job:
                queue.popleft()
            self.abandon_after(job)
        LOGGER.error("%s", exc)

    def fail_account(self, lane: AccountLane, exc: BaseException) -> None:
        """The account can't go on (bad token, settings, closed hours): every job of it
        that has not finished FAILS with ``exc``; its READY ones are still emitted. The
        other accounts go on."""
        with self.cv:
            first = lane.failure is None
            if first:
                lane.failure = exc
            error = lane.failure
            stopped = 0
            for job in lane.jobs:
                if job.state in _NOT_DONE:
                    job.error = error
                    self.move(job, job.state, JobState.FAILED)
                    stopped += 1
            lane.queue.clear()
        if first and len(self.lanes) > 1:
            LOGGER.info("account '%s' failed: its %d export(s) not yet done stop", lane.name, stopped)

    def abandon_after(self, job: ExportJob) -> None:
        """The pair (stream, account) stops at ``job``'s window: its later windows are
        never emitted, so they must not be created, polled, or hold a place."""
        with self.cv:
            for later in self.lane(job).jobs:  # by window, not seq: a split's halves share its seq
                if later.pair != job.pair or later.window.start < job.window.end:
                    continue
                later.abandoned = True
                if later.state in _CANCELLABLE:
                    self.move(later, later.state, JobState.CANCELLED)
                    later.release()
                # DOWNLOADING ones are cancelled when their download ends (FileFetcher)

    def fail_all(self, exc: BaseException) -> None:
        """A bug on an engine thread: the consumer raises it."""
        with self.cv:
            self.fatal = exc
            self.cv.notify_all()

    # ------------------------------------------------------------------ stopping
    def stop(self) -> None:
        """Cancel every live job (DOWNLOADING ones when their download ends) and wake
        every waiting thread."""
        with self.cv:
            self.stopped = True
            self._stopping.set()
            for job in self.jobs:
                if job.state in _CANCELLABLE:
                    self.move(job, job.state, JobState.CANCELLED)
            self.cv.notify_all()

    def pause(self, seconds: float) -> None:
        """Wait between two tries of a request, ending at once when the sync stops."""
        self._stopping.wait(max(0.0, seconds))
