"""The job board: every job of a sync, its accounts' lanes, the lock, and how jobs fail.

Why one board: the engine thread, the download pool, the consumer (the Singer layer) and
``stop()`` all move jobs, and a request in flight can come back after another thread
moved its job on. So every state change goes through :meth:`JobBoard.apply` (under the
lock; the job's own transition method checks the move against its table and changes
its fields), and every failure through :meth:`JobBoard.failed`, the one place that
tells an account failure (the whole account stops; :mod:`jobs.failures`) from a window
failure (its (stream, account) stops at that window).

What costs O(changes), not O(jobs): after each move the board updates what the other
parts read, so none of them scans every job: counts by state (per account and in all),
the status checks due (a heap by due time), the webhook wake-ups, the (stream, account)
pairs whose head may have changed (the hand-off looks only at those), the lanes whose
creates may have changed (the capacity re-decides only those), and exports by id.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from tap_commerce_exports.jobs.create_refusals import CreateRefusals
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import IN_FLIGHT, Expected, ExportJob, JobState
from tap_commerce_exports.providers.base import ExportProvider

#: Wake-ups kept for exports no job has yet (dashboard exports' too: bounded).
EARLY_WAKES = 1024
LOGGER = logging.getLogger("tap_commerce_exports.jobs")

#: Jobs that still need their account's API (an account failure stops them).
_NOT_DONE = (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING)
#: Live jobs that can be cancelled at once (a DOWNLOADING one is, when its download ends).
_CANCELLABLE = (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.READY)
#: Moves the hand-off must look at (the head of a pair may now be deliverable).
_HANDOFF_STATES = frozenset({JobState.READY, JobState.FAILED, JobState.SPLIT, JobState.CANCELLED})
#: Exports that hold a place on the provider's side (running there).
RUNNING = frozenset({JobState.CREATING, JobState.WAITING})

Pair = tuple[str, str]


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

    def __init__(self, providers: Mapping[str, ExportProvider], *, refusal_base: float) -> None:
        self.cv = threading.Condition()
        self.lanes: dict[str, AccountLane] = {
            key: AccountLane(key, provider, CreateRefusals(base=refusal_base))
            for key, provider in providers.items()
        }
        self.jobs: list[ExportJob] = []
        self.totals: Counter[JobState] = Counter()
        self.stopped = False
        self.fatal: BaseException | None = None  # a bug on an engine thread: ends the run
        self.exports_changed = False  # an export was created, adopted, replaced or split
        #: export id -> account (None: any) of wake-ups that came before any job had that
        #: export: a webhook may beat its create's answer (see :meth:`take_early_wake`)
        self.early_wakes: OrderedDict[str, str | None] = OrderedDict()
        self._stopping = threading.Event()
        # --- indexes (under the lock), kept by _moved() ---
        self._checks: list[tuple[float, int, ExportJob]] = []  # (due, tie, job), stale ones skipped
        self._tie = itertools.count()
        self.woken: dict[ExportJob, None] = {}  # webhook wake-ups, in order
        self.moved_pairs: set[Pair] = set()  # pairs whose head may be deliverable now
        self.dirty_lanes: dict[str, None] = {}  # lanes whose creates may have changed
        self.places_freed = False  # a job left IN_FLIGHT or READY (caps over all accounts)
        self._by_export: dict[str, list[ExportJob]] = {}
        self._by_pair: dict[Pair, list[ExportJob]] = {}
        self.export_pairs: set[Pair] = set()  # pairs whose exports in flight may have changed

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
            for job in added:
                self._by_pair.setdefault(job.pair, []).append(job)
            for key, queued in by_lane.items():
                queue = self.lanes[key].queue
                if first:
                    queue.extendleft(reversed(queued))
                else:
                    queue.extend(queued)
                self.dirty_lanes[key] = None
            self.cv.notify_all()

    def apply(self, job: ExportJob, change: Callable[[], object]) -> None:
        """The one place a job changes: ``change`` is one of the job's transition methods
        (bound, with its arguments), run under the lock; the counts and indexes follow,
        and every waiting thread is woken."""
        with self.cv:
            before = job.state
            change()
            self._moved(job, before)

    def _moved(self, job: ExportJob, before: JobState) -> None:
        after = job.state
        lane = self.lane(job)
        if after is not before:
            lane.counts[before] -= 1
            lane.counts[after] += 1
            self.totals[before] -= 1
            self.totals[after] += 1
            self.dirty_lanes[lane.key] = None
            self.export_pairs.add(job.pair)
            if before in IN_FLIGHT or before is JobState.READY:
                self.places_freed = True
            if after in _HANDOFF_STATES:
                self.moved_pairs.add(job.pair)
        if after is JobState.WAITING:
            heapq.heappush(self._checks, (job.next_check_at, next(self._tie), job))
        if job.export_id is not None:
            owners = self._by_export.setdefault(job.export_id, [])
            if job not in owners:
                owners.append(job)
        self.cv.notify_all()

    def jobs_of_pair(self, pair: Pair) -> list[ExportJob]:
        """Every job of one (stream, account), split parts included (caller holds the lock)."""
        return self._by_pair.get(pair, [])

    def jobs_of_export(self, export_id: str) -> list[ExportJob]:
        """The jobs that followed export ``export_id`` (caller holds the lock)."""
        return self._by_export.get(export_id, [])

    def wake(self, job: ExportJob) -> None:
        """The webhook says ``job``'s export is ready: check it now (caller holds the lock)."""
        if job.request_wake():
            self.woken[job] = None
            self.cv.notify_all()

    def note_early_wake(self, export_id: str, account: str | None) -> None:
        """Keep a wake-up for an export no job has yet (bounded; caller holds the lock)."""
        self.early_wakes[export_id] = account
        self.early_wakes.move_to_end(export_id)
        while len(self.early_wakes) > EARLY_WAKES:
            self.early_wakes.popitem(last=False)

    def take_early_wake(self, job: ExportJob) -> bool:
        """Whether a wake-up for ``job``'s export came before its create answered; it is
        used up (caller holds the lock). Why: the provider may announce an export ready
        before the answer to its create reached us, and a delivery answered 200 is not
        sent again."""
        export_id = job.export_id
        if export_id is None or export_id not in self.early_wakes:
            return False
        account = self.early_wakes[export_id]
        if account is not None and not self.is_account(job, account):
            return False
        del self.early_wakes[export_id]
        return True

    def take_due_checks(self, now: float, limit: int) -> list[ExportJob]:
        """Up to ``limit`` WAITING jobs whose check is due at ``now``, or that the webhook
        woke (those first), once each (caller holds the lock); the rest stay due. Heap
        entries left by an earlier wait are skipped."""
        due: dict[ExportJob, None] = {}
        for job in list(self.woken):
            if len(due) >= limit:
                break
            del self.woken[job]
            if job.state is JobState.WAITING:
                due[job] = None
        checks = self._checks
        while checks and checks[0][0] <= now and len(due) < limit:
            at, _, job = heapq.heappop(checks)
            if job.state is JobState.WAITING and job.next_check_at == at:
                due[job] = None
        for job in due:
            job.wake_answered()
        return list(due)

    def next_check_at(self) -> float | None:
        """When the next status check is due (0 for a wake-up), or None (caller holds the lock)."""
        if any(j.state is JobState.WAITING for j in self.woken):
            return 0.0
        checks = self._checks
        while checks and (
            checks[0][2].state is not JobState.WAITING or checks[0][2].next_check_at != checks[0][0]
        ):
            heapq.heappop(checks)
        return checks[0][0] if checks else None

    def hold(self, lane: AccountLane, until: float) -> None:
        """The account's creates wait until ``until`` (its provider's hours are closed)."""
        with self.cv:
            lane.hours_blocked_until = until
            self.dirty_lanes[lane.key] = None

    def running(self) -> int:
        """Exports of this run running on the provider's side (created, not yet DONE)."""
        return sum(self.totals[s] for s in RUNNING)

    def requeue(self, job: ExportJob, expected: JobState, why: str) -> None:
        """WAITING/DOWNLOADING -> QUEUED: this window needs a new export (``why`` says
        why); it is created next, before windows after it."""
        with self.cv:
            if job.state is not expected:
                return
            old = job.export_id
            self.apply(job, lambda: job.requeue(expected))
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
            self.apply(job, lambda: job.fail(exc, allowed))
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
            error: BaseException = lane.failure or exc
            stopped = 0
            for job in lane.jobs:
                if job.state in _NOT_DONE:
                    self.apply(job, partial(job.fail, error, job.state))
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
                later.abandon()
                if later.state in _CANCELLABLE:
                    self.apply(later, later.cancel)
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
                    self.apply(job, partial(job.cancel, release=False))
            self.cv.notify_all()

    def pause(self, seconds: float) -> None:
        """Wait between two tries of a request, ending at once when the sync stops."""
        self._stopping.wait(max(0.0, seconds))
