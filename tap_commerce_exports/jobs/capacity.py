"""Which export may be created now: places in flight, export hours, refused creates.

Why a part of its own: whether a create may go out depends on things that have nothing
to do with the window asking, and most of them belong to its ACCOUNT: the places it has
in flight (``max_concurrent_exports`` each, plus the files held for the consumer), its
provider's published export hours, and the clock its refused creates (HTTP 503) run on.
Only ``max_concurrent_total`` spans the accounts. Keeping all of it here means one
account's closed hours, back-off or full places never hold back another's creates, and
the scheduler only asks "what is next?".

Counts come from the job board (kept by its one guarded ``move``), so a question is O(1)
per account, not a scan of every job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.failures import OutsideExportHours
from tap_commerce_exports.jobs.job import IN_FLIGHT, ExportJob, JobState

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: Longest wait before the hours are looked at again (they may open earlier than said).
HOURS_RECHECK = 300.0


def creation_order(job: ExportJob) -> tuple[int, str, str]:
    """Oldest windows first, across streams and accounts."""
    return job.seq, job.stream.name, job.account


class Capacity:
    """The places of every account, the global cap, and when each account may create."""

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

    # ------------------------------------------------------------------ places
    def next_creatable(self, now: float) -> ExportJob | None:
        """The job to create now across the accounts, or None (caller holds the lock):
        of the accounts whose creates are not held back, the oldest window that fits."""
        held_ok = self._all_accounts_allow()  # one look, not one per account
        if held_ok is None:
            return None
        best: ExportJob | None = None
        for lane in self.board.lanes.values():
            if not lane.queue or lane.failure is not None or now < lane.creates_blocked_until():
                continue
            job = self._next_of(lane, held_ok)
            if job is not None and (best is None or creation_order(job) < creation_order(best)):
                best = job
        return best

    def _all_accounts_allow(self) -> bool | None:
        """What the cap over all accounts allows: None, no create; False, only a window
        needed before a READY one (the held files fill the places); True, any."""
        if self.total is None:
            return True
        totals = self.board.totals
        in_flight = sum(totals[s] for s in IN_FLIGHT)
        if in_flight >= self.total:
            return None
        return in_flight + totals[JobState.READY] < 2 * self.total

    def next_creatable_in(self, lane: AccountLane) -> ExportJob | None:
        """The account's next job to create now, or None (caller holds the lock).

        Normally its queue's head, while places are free (the account's and, with a
        total cap, all accounts'). When only the files held for the consumer fill the
        places, a window the consumer needs BEFORE one of those READY ones may still go
        (adopted exports can be READY far ahead of windows still to create: holding
        those back would wait forever)."""
        held_ok = self._all_accounts_allow()
        return None if held_ok is None else self._next_of(lane, held_ok)

    def _next_of(self, lane: AccountLane, all_held_ok: bool) -> ExportJob | None:
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

    def next_create_at(self) -> tuple[list[float], bool]:
        """When accounts with a create waiting may send it, and whether any account has
        creates queued at all (caller holds the lock)."""
        moments: list[float] = []
        queued = False
        held_ok = self._all_accounts_allow()  # None: no account may create; a move wakes us
        for lane in self.board.lanes.values():
            if lane.failure is None and lane.queue:
                queued = True
                if held_ok is not None and self._next_of(lane, held_ok) is not None:
                    moments.append(lane.creates_blocked_until())
        return moments, queued

    # ------------------------------------------------------------------ hours
    def open_now(self, lane: AccountLane) -> bool:
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
        delay = (opens - self.wall_clock()).total_seconds() if opens else self.hours_unknown_wait
        with self.board.cv:
            lane.hours_blocked_until = self.clock() + max(1.0, min(delay, HOURS_RECHECK))
        return False
