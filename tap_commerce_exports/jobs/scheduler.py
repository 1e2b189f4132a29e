"""The create/poll scheduler: the engine thread that moves exports along.

Why one thread deciding all of it: creates and status checks are small requests whose
timing is the whole point (when to create, when to look again, when to give up), so
one loop keeps that timing in one place: it follows the exports the last run left
(``saved_exports.py``), checks pending exports when due (``checks.py``: DONE to the
file fetcher, retries, splits, timeouts) and creates what the capacity lets through
(``creates.py``), then sleeps until the next thing is due. With several accounts the
requests themselves go to a few workers (``requests.py``); the decisions stay here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.capacity import Capacity
from tap_commerce_exports.jobs.checks import ChecksMixin
from tap_commerce_exports.jobs.creates import CLOCK_SKEW, CreatesMixin
from tap_commerce_exports.jobs.fetcher import FileFetcher
from tap_commerce_exports.jobs.requests import RequestRunner
from tap_commerce_exports.jobs.saved_exports import SavedExportsMixin
from tap_commerce_exports.jobs.spans import SpanMemory

__all__ = ["CLOCK_SKEW", "ExportScheduler", "Wait", "wait_on_condition"]

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: Longest sleep while creates are queued (a place may free up without a wake-up).
QUEUED_RECHECK = 1.0
#: Longest sleep with nothing queued.
IDLE_RECHECK = 60.0

#: The engine's idle wait: ``wait(condition, seconds)``, the condition's lock held.
Wait = Callable[[threading.Condition, float], object]


def wait_on_condition(condition: threading.Condition, seconds: float) -> object:
    return condition.wait(seconds)


class ExportScheduler(SavedExportsMixin, CreatesMixin, ChecksMixin):
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
        spans: SpanMemory | None = None,
        planned_span: timedelta = timedelta(days=365),
        request_workers: int = 1,
    ) -> None:
        self.board = board
        self.runner = RequestRunner(request_workers, board.cv, board.fail_all)
        self.spans = spans or SpanMemory(smallest=min_split_span)
        self.planned_span = planned_span  # the run's window span (spans grow back to it)
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
            self._find_listed()
            self._adopt_saved()
            while True:
                with board.cv:
                    if board.stopped:
                        return
                self._poll_due()  # first: due checks free places; creates take what is left
                self._create_due()
                with board.cv:
                    if board.stopped:  # stop() may have set it meanwhile
                        return  # type: ignore[unreachable]
                    self.wait(board.cv, self._sleep_time())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the consumer thread
            board.fail_all(exc)

    def _sleep_time(self) -> float:
        """Seconds until the next check or create is due (caller holds the lock): read
        off the board's heap of checks and the capacity's clocks, not a scan of jobs.
        Any move of a job wakes the engine earlier (the board notifies)."""
        now = self.clock()
        if self.runner.free() <= 0:
            return IDLE_RECHECK  # every worker busy: a finished request wakes the engine
        moments = [
            m for m in (self.board.next_check_at(), self.capacity.next_create_at(now)) if m is not None
        ]
        longest = QUEUED_RECHECK if self.capacity.queued() else IDLE_RECHECK
        if not moments:
            return longest
        return max(0.0, min(min(moments) - now, longest))
