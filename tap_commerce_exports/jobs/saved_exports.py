"""Exports an earlier run made, followed instead of created again (the engine thread's
first step): those saved in STATE, and, where the provider lists its exports, those
an earlier run made but whose STATE never reached the state backend.

Why apart from the scheduler: it runs once, before the first create, and shares none of
the create/check loop's timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.jobs.board import AccountLane, JobBoard
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.providers.base import ExportPhase, ExportStatus, FoundExport
from tap_commerce_exports.windows import iso_z

LOGGER = logging.getLogger("tap_commerce_exports.jobs")


def find_listed(board: JobBoard, wall_clock: Callable[[], datetime], export_timeout: float) -> None:
    """Every account's windows with no saved export, looked up in its provider's list."""
    for lane in list(board.lanes.values()):
        _find_listed_of(board, lane, wall_clock, export_timeout)


def _find_listed_of(
    board: JobBoard, lane: AccountLane, wall_clock: Callable[[], datetime], export_timeout: float
) -> None:
    """Windows with no saved export: a provider that lists its exports may still show
    one an earlier run made for it within ``export_timeout`` (that run's STATE never
    reached the state backend, e.g. a target keeps STATE until it writes records).
    One still running is followed like a saved one; a finished one is not (it may be
    another run's, made under other settings, long read): a new export is cheaper
    than a wrong one. One list per export type and account."""
    if not lane.provider.can_find_exports:
        return
    with board.cv:
        todo = [j for j in lane.jobs if j.adopt_id is None and j.state is JobState.QUEUED]
    since = wall_clock() - timedelta(seconds=export_timeout)
    listed: dict[str, list[FoundExport]] = {}
    for job in todo:
        export_type = job.stream.export_type
        if export_type not in listed:
            try:
                listed[export_type] = lane.provider.recent_exports(export_type, since)
            except UserError as exc:
                if is_account_failure(exc):
                    board.fail_account(lane, exc)
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
            job.adopt_id, job.adopt_created_at = match.status.export_id, match.created_at
            job.adopt_listed = True


def adopt_saved(board: JobBoard, clock: Callable[[], float], wall_clock: Callable[[], datetime]) -> int:
    """QUEUED -> WAITING for every job that comes with a saved export: no create;
    its age counts towards ``export_timeout`` and its first check is now. Returns how
    many it followed."""
    adopted: list[ExportJob] = []
    with board.cv:
        now = clock()
        wall = wall_clock()
        for job in board.jobs:
            if job.adopt_id is None or job.state is not JobState.QUEUED:
                continue
            created = job.adopt_created_at or wall
            job.status = ExportStatus(job.adopt_id, ExportPhase.PENDING, "saved")
            job.created_at = job.first_attempt_at = now - max(0.0, (wall - created).total_seconds())
            job.created_wall = created
            job.adopted = True
            job.next_check_at = now
            board.move(job, JobState.QUEUED, JobState.WAITING)
            adopted.append(job)
    for job in adopted:
        LOGGER.info(
            "%s: following export %s %s (created %s); no new export",
            job.label,
            job.adopt_id,
            "an earlier run made, found in the provider's list" if job.adopt_listed else "from the last run",
            job.created_wall.strftime("%Y-%m-%d %H:%M:%S UTC") if job.created_wall else "-",
        )
    return len(adopted)


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
