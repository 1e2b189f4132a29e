"""Which export may be created now: places in flight, export hours, refused creates.

Why a part of its own: whether a create may go out depends on things that have nothing
to do with the window asking, and most of them belong to its ACCOUNT: the places it has
in flight (``max_concurrent_exports`` each, plus the files held for the consumer), its
provider's published export hours, and the clock its refused creates (HTTP 503) run on.
Two things span the accounts: ``max_concurrent_total``, and the provider's own capacity
once it proves shared (:mod:`jobs.shared_places`). Keeping all of it here means one
account's closed hours, back-off or full places never hold back another's creates, and
the scheduler only asks "what is next?".

It decides; it never takes the board's lock nor moves a job: every method runs with the
lock already held by its caller (the scheduler), on the board's counts and on the lanes
the board marked changed, so a question costs O(changes · log accounts), not a scan of
every account or job: lanes that may create now wait in a heap by their head's window
order, lanes held back by a clock in a heap by the time it runs out.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from datetime import datetime

from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.failures import OutsideExportHours
from tap_commerce_exports.jobs.job import IN_FLIGHT, ExportJob, JobState
from tap_commerce_exports.jobs.shared_places import SharedPlaces

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: Longest wait before the hours are looked at again (they may open earlier than said).
HOURS_RECHECK = 300.0

Order = tuple[int, str, str]


def creation_order(job: ExportJob) -> Order:
    """Oldest windows first, across streams and accounts."""
    return job.seq, job.stream.name, job.account


class Capacity:
    """The places of every account, the caps over all, and when each account may create."""

    def __init__(
        self,
        board: JobBoard,
        *,
        per_account: int,
        total: int | None,
        outside_hours: str,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        hours_unknown_wait: float,
    ) -> None:
        self.board = board
        self.per_account = per_account
        self.total = total
        self.outside_hours = outside_hours
        self.clock = clock
        self.wall_clock = wall_clock
        self.hours_unknown_wait = hours_unknown_wait  # when closed hours don't say when they open
        self.shared = SharedPlaces()
        self._ready: list[tuple[Order, int, str]] = []  # lanes that may create: (head order, tie, key)
        self._held: list[tuple[float, int, str]] = []  # lanes held by a clock: (until, tie, key)
        self._tie = 0
        self._parked: set[str] = set()  # lanes with creates held by a cap over all accounts

    # ------------------------------------------------------------------ places
    def next_creatable(self, now: float) -> ExportJob | None:
        """The job to create now across the accounts, or None (caller holds the lock):
        of the accounts whose creates are not held back, the oldest window that fits."""
        held_ok = self._all_accounts_allow()  # one look, not one per account
        if held_ok is None:
            return None
        self._refresh(now)
        ready = self._ready
        while ready:
            order, _, key = ready[0]
            lane = self.board.lanes[key]
            job = self._lane_next(lane, held_ok, now)
            if job is None:
                heapq.heappop(ready)  # the board marks it again when something changes
                continue
            if creation_order(job) != order:
                heapq.heapreplace(ready, self._entry(creation_order(job), key))
                continue
            return job
        return None

    def _entry(self, order: Order, key: str) -> tuple[Order, int, str]:
        self._tie += 1
        return order, self._tie, key

    def _refresh(self, now: float) -> None:
        """Re-decide the lanes the board marked, and those whose clock ran out."""
        board = self.board
        if board.places_freed and self._parked:
            for key in self._parked:
                board.dirty_lanes[key] = None
            self._parked.clear()
        board.places_freed = False
        while self._held and self._held[0][0] <= now:
            board.dirty_lanes[heapq.heappop(self._held)[2]] = None
        dirty = list(board.dirty_lanes)
        board.dirty_lanes.clear()
        for key in dirty:
            lane = board.lanes[key]
            if not lane.queue or lane.failure is not None:
                continue
            until = lane.creates_blocked_until()
            if now < until:
                self._tie += 1
                heapq.heappush(self._held, (until, self._tie, key))
                continue
            head = lane.next_queued()
            if head is not None:
                heapq.heappush(self._ready, self._entry(creation_order(head), key))

    def _lane_next(self, lane: AccountLane, held_ok: bool, now: float) -> ExportJob | None:
        if not lane.queue or lane.failure is not None:
            return None
        until = lane.creates_blocked_until()
        if now < until:
            self._tie += 1
            heapq.heappush(self._held, (until, self._tie, lane.key))
            return None
        job = self._next_of(lane, held_ok)
        if job is None and lane.next_queued() is not None and not held_ok:
            self._parked.add(lane.key)
        return job

    def _all_accounts_allow(self) -> bool | None:
        """What the caps over all accounts allow: None, no create; False, only a window
        needed before a READY one (the held files fill the places); True, any."""
        if not self.shared.allows(self.board.running()):
            return None
        if self.total is None:
            return True
        totals = self.board.totals
        in_flight = sum(totals[s] for s in IN_FLIGHT)
        if in_flight >= self.total:
            return None
        return in_flight + totals[JobState.READY] < 2 * self.total

    def _next_of(self, lane: AccountLane, all_held_ok: bool) -> ExportJob | None:
        """The account's next job to create now, or None (caller holds the lock).

        Normally its queue's head, while places are free (the account's and, with a
        total cap, all accounts'). When only the files held for the consumer fill the
        places, a window the consumer needs BEFORE one of those READY ones may still go
        (adopted exports can be READY far ahead of windows still to create: holding
        those back would wait forever)."""
        head = lane.next_queued()
        if head is None:
            return None
        in_flight = lane.in_flight()
        if in_flight >= self.per_account:
            return None
        held_ok = all_held_ok and in_flight + lane.counts[JobState.READY] < 2 * self.per_account
        if held_ok:
            return head
        if not lane.counts[JobState.READY]:
            return None  # none of its windows is READY ahead of one still to create
        ready_ahead: dict[str, datetime] = {}
        for j in lane.jobs:
            if j.state is JobState.READY:
                latest = ready_ahead.get(j.stream.name)
                ready_ahead[j.stream.name] = j.window.start if latest is None else max(latest, j.window.start)
        for j in lane.queue:
            if j.state is JobState.QUEUED and j.window.start < ready_ahead.get(j.stream.name, j.window.start):
                return j
        return None

    def next_create_at(self, now: float) -> float | None:
        """When the next create may go (``now`` if one may now), or None when none is
        waiting on a clock: a move of the board wakes the engine (caller holds the lock)."""
        if self._all_accounts_allow() is None:
            return None
        if self.next_creatable(now) is not None:
            return now
        return self._held[0][0] if self._held else None

    def queued(self) -> bool:
        """Whether any account has creates waiting (caller holds the lock)."""
        return self.board.totals[JobState.QUEUED] > 0

    # ------------------------------------------------------------------ refusals
    def refused(self, lane: AccountLane, now: float, retry_after: float | None, reason: str | None) -> float:
        """A create of ``lane`` was refused as busy (its job is QUEUED again): either the
        shared limit learns from it (no clock: the next freed place goes at once), or the
        account waits on its own clock. Returns the account's wait (0: none)."""
        board = self.board
        if self.shared.refused(board.running(), lane.in_flight()) and not retry_after:
            lane.refusals.note(now, reason)
            return 0.0
        return lane.refusals.refused(now, retry_after, reason)

    def accepted(self, lane: AccountLane) -> None:
        """A create of ``lane`` went through (its job counts as running already)."""
        lane.refusals.accepted()
        self.shared.accepted(self.board.running())

    # ------------------------------------------------------------------ hours
    def closed_for(self, lane: AccountLane) -> float | None:
        """None when the account's provider takes exports now; else the seconds its
        creates wait for its hours to open (the caller holds them back: ``JobBoard.hold``),
        or :class:`OutsideExportHours` with ``outside_hours: stop``."""
        availability = lane.provider.availability(self.wall_clock())
        if availability.open:
            return None
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
        delay = (opens - self.wall_clock()).total_seconds() if opens else self.hours_unknown_wait
        return max(1.0, min(delay, HOURS_RECHECK))
