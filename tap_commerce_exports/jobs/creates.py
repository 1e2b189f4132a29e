"""Creating exports: what the capacity lets through, refusals, lost answers, spans.

Why a part of its own: a create is the one request that costs the provider work, so it
goes out only when the capacity says a place is free (``jobs/capacity.py``), a window
longer than its (stream, account) learned works is cut first (``jobs/spans.py``), a
create whose answer was lost is looked up before it is sent again, and a refusal (503)
either teaches the shared limit or sets the account's own clock. A create refused for
its range (400) is tried once more as two halves; a webhook's wake-up that came before
the create's answer has its export checked at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from tap_commerce_exports.errors import ExportFailed, UserError
from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.capacity import Capacity, creation_order
from tap_commerce_exports.jobs.failures import OutsideExportHours
from tap_commerce_exports.jobs.fetcher import FileFetcher
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.requests import RequestRunner
from tap_commerce_exports.jobs.spans import SpanMemory
from tap_commerce_exports.providers.base import (
    CreateAnswerLost,
    CreateRefused,
    ExportPhase,
    ExportProvider,
    ExportsBusy,
    ExportStatus,
)
from tap_commerce_exports.windows import cut_window, split_window

LOGGER = logging.getLogger("tap_commerce_exports.jobs")
#: How far the provider's clock may be behind ours when its created_at is compared.
CLOCK_SKEW = timedelta(minutes=10)


class CreatesMixin:
    """Creates (part of ExportScheduler, on the engine thread and its request runner)."""

    board: JobBoard
    capacity: Capacity
    fetcher: FileFetcher
    spans: SpanMemory
    runner: RequestRunner
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime]
    poll_interval: float
    poll_max_interval: float
    webhook_active: bool
    export_timeout: float
    lost_create_attempts: int
    retry_pause: float

    _succeeded: Callable[[ExportJob], None]  # ChecksMixin's

    def _create_due(self) -> None:
        board = self.board
        while True:
            with board.cv:
                now = self.clock()
                if board.stopped or self.runner.free() <= 0:
                    return
                job = self.capacity.next_creatable(now)
                if job is None:
                    return
                lane = board.lane(job)
                if self._cut_to_learned_span(job):
                    continue
            try:
                closed_for = self.capacity.closed_for(lane)
            except OutsideExportHours as exc:
                board.fail_account(lane, exc)
                continue
            if closed_for is not None:
                board.hold(lane, self.clock() + closed_for)
                continue  # its account waits for its hours; the others go on
            with board.cv:
                if not job.in_state(JobState.QUEUED):  # cancelled meanwhile
                    continue
                board.apply(job, partial(job.begin_create, now))
            self.runner.submit(self._create_one, job, lane)

    def _create_one(self, job: ExportJob, lane: AccountLane) -> None:
        """One create, CREATING already: accepted, refused, or failed."""
        try:
            status = self._create(job, lane.provider)
        except ExportsBusy as busy:
            self._refused(job, lane, busy)
            return
        except CreateRefused as refused:
            self._range_refused(job, lane, refused)
            return
        except UserError as exc:
            self.board.failed(job, exc, JobState.CREATING)
            return
        self._created(job, lane, status)

    def _created(self, job: ExportJob, lane: AccountLane, status: ExportStatus) -> None:
        board = self.board
        with board.cv:
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
            now, wall = self.clock(), self.wall_clock()
            board.exports_changed = True
            if status.phase is ExportPhase.DONE:
                board.apply(job, partial(job.created_done, status, now, wall))
                self.fetcher.submit(job)
                self._succeeded(job)
            else:
                first_check = self.poll_max_interval if self.webhook_active else self.poll_interval
                board.apply(job, partial(job.created, status, now, wall, first_check))
            if board.take_early_wake(job):  # announced ready before its create answered
                board.wake(job)  # checked at once (a DONE one needs no check)
            self.capacity.accepted(lane)
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
                board.apply(job, job.refused)
                if job not in lane.queue:  # dropped as not QUEUED while its create was out
                    lane.queue.appendleft(job)
            now = self.clock()
            delay = self.capacity.refused(lane, now, busy.retry_after, busy.reason)
            refusing = lane.refusals.refusing_for(now)
            give_up = refusing + delay > self.export_timeout
        whose = f" for account '{lane.name}'" if len(board.lanes) > 1 else ""
        if not give_up and not delay:
            LOGGER.info(
                "%s: the provider refused to create the export (%s); it runs %d of this run's "
                "exports, which the accounts share: the next create waits for one of them",
                job.label,
                busy.describe(),
                self.capacity.shared.limit or 0,
            )
            return
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

    def _range_refused(self, job: ExportJob, lane: AccountLane, refused: CreateRefused) -> None:
        """A create refused for its range (400): CREATING -> SPLIT, retried ONCE as two
        halves (a published cap may be read more strictly than written); a half refused
        again fails its stream with the server's words."""
        board = self.board
        halves = None if job.range_refused else split_window(job.window, timedelta(seconds=1))
        if halves is None:
            again = " again, for half its window" if job.range_refused else ""
            board.fail_window(
                job,
                ExportFailed(
                    f"{job.label}: the provider refused to create the export{again} "
                    f"({refused.describe()}); lower 'window_days'"
                ),
                JobState.CREATING,
            )
            return
        with board.cv:
            if job.state is not JobState.CREATING:  # cancelled while the create was in flight
                return
            if lane.queue and lane.queue[0] is job:
                lane.queue.popleft()
            board.apply(job, partial(job.split, halves, JobState.CREATING, range_refused=True))
            board.add(job.parts or (), first=True)
            board.exports_changed = True
        LOGGER.warning(
            "%s: the provider refused to create the export for its range (%s); "
            "retrying once with the window cut in two: %s and %s",
            job.label,
            refused.describe(),
            halves[0],
            halves[1],
        )

    def _cut_to_learned_span(self, job: ExportJob) -> bool:
        """QUEUED -> SPLIT when ``job``'s window is longer than its pair learned works:
        the pieces are created instead, each at most that span (caller holds the lock)."""
        cap = self.spans.cap(job.pair)
        if cap is None or job.window.end - job.window.start <= cap:
            return False
        pieces = cut_window(job.window, cap)
        if len(pieces) < 2:
            return False
        lane = self.board.lane(job)
        if lane.queue and lane.queue[0] is job:
            lane.queue.popleft()
        self.board.apply(job, partial(job.split, pieces, JobState.QUEUED))
        self.board.add(job.parts or (), first=True)
        LOGGER.info(
            "%s: windows of %s fail above a span; cut into %d windows of at most %s",
            job.label,
            job.stream.name,
            len(pieces),
            cap,
        )
        return True
