"""Following the exports an earlier run made, instead of creating new ones.

Why a part of its own: before the engine creates anything it looks for what the last
run left running: exports saved in its STATE (each job planned with ``adopt_id``), and,
where the provider lists its exports, ones an earlier run made whose STATE never reached
the state backend. A job that comes with one moves QUEUED -> WAITING without a create;
its age counts towards ``export_timeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.providers.base import ExportPhase, ExportStatus, FoundExport
from tap_commerce_exports.windows import iso_z

LOGGER = logging.getLogger("tap_commerce_exports.jobs")


class SavedExportsMixin:
    """The engine's start: saved and listed exports followed (part of ExportScheduler)."""

    board: JobBoard
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime]
    export_timeout: float
    adopted: int

    def _find_listed(self) -> None:
        for lane in list(self.board.lanes.values()):
            self._find_listed_of(lane)

    def _find_listed_of(self, lane: AccountLane) -> None:
        """Windows with no saved export: a provider that lists its exports may still show
        one an earlier run made for it within ``export_timeout`` (that run's STATE never
        reached the state backend, e.g. a target keeps STATE until it writes records).
        One still running is followed like a saved one; a finished one is not (it may be
        another run's, made under other settings, long read): a new export is cheaper
        than a wrong one. One list per export type and account."""
        if not lane.provider.can_find_exports:
            return
        with self.board.cv:
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
                        self.board.fail_account(lane, exc)
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
                job.follow_saved(match.status.export_id, match.created_at, listed=True)

    def _adopt_saved(self) -> None:
        """QUEUED -> WAITING for every job that comes with a saved export: no create;
        its age counts towards ``export_timeout`` and its first check is now."""
        adopted: list[ExportJob] = []
        board = self.board
        with board.cv:
            now = self.clock()
            wall = self.wall_clock()
            for job in board.jobs:
                if job.adopt_id is None or job.state is not JobState.QUEUED:
                    continue
                board.apply(job, partial(job.adopt, job.adopt_id, job.adopt_created_at or wall, now, wall))
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


def not_the_windows(job: ExportJob, status: ExportStatus) -> str | None:
    """Why a followed export is not ``job``'s window's, from what its answer says of its
    type and range (None: it is, or the answer says nothing).

    Why: an id in STATE (or a provider's list) is input; followed blindly, a STATE naming
    a one-day customer export as an orders window emitted the wrong rows for that window
    and moved its bookmark. The type is shown only as the short printable text the
    provider's reader let through."""
    if status.export_type is not None and status.export_type != job.stream.export_type:
        return f"is a '{status.export_type}' export"
    if status.window is not None and status.window != (job.window.start, job.window.end):
        start, end = status.window
        return f"covers {iso_z(start)} to {iso_z(end)}"
    return None
