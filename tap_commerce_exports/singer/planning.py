"""Windows per (stream, account), from that pair's state: the jobs a run starts with.

Each pair starts at its bookmark less ``lookback`` (or ``start_date``), is cut into
windows by THE boundary rule (``windows.py``), and each window that has an export saved
by the last run follows it instead of creating another.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tap_commerce_exports.jobs.job import ExportJob
from tap_commerce_exports.singer.bookmarks import read_bookmark, read_exports
from tap_commerce_exports.windows import iso_z, plan_windows

if TYPE_CHECKING:
    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.singer.host import SyncStream

LOGGER = logging.getLogger("tap_commerce_exports.sync")


def plan_jobs(
    state: dict[str, Any],
    settings: Settings,
    streams: Sequence[SyncStream],
    accounts: Iterable[str],
    *,
    many: bool,
) -> list[ExportJob]:
    """Every account's windows of every stream. ``many``: jobs name their account (the
    engine's jobs of a one-account run name none)."""
    jobs: list[ExportJob] = []
    for account in accounts:
        jobs += _plan_account(state, settings, streams, account, many=many)
    return jobs


def _plan_account(
    state: dict[str, Any], settings: Settings, streams: Sequence[SyncStream], account: str, *, many: bool
) -> list[ExportJob]:
    jobs: list[ExportJob] = []
    of = f" of '{account}'" if many else ""
    for stream in streams:
        start = settings.start_date
        bookmark = read_bookmark(state, stream.name, account)
        if bookmark is not None:
            start = max(start, bookmark - settings.lookback)
        windows = plan_windows(start, settings.end_date, settings.window)
        if not windows:
            LOGGER.info(
                "stream '%s'%s is up to date (bookmark %s)",
                stream.name,
                of,
                iso_z(bookmark) if bookmark else "-",
            )
        else:
            LOGGER.info(
                "stream '%s'%s: %d window(s) from %s to %s",
                stream.name,
                of,
                len(windows),
                iso_z(windows[0].start),
                iso_z(windows[-1].end),
            )
        saved = {(e.window_start, e.window_end): e for e in read_exports(state, stream.name, account)}
        for i, w in enumerate(windows):
            job = ExportJob(stream=stream.definition, window=w, seq=i, account=account if many else "")
            match = saved.pop((w.start, w.end), None)
            if match is not None:
                job.adopt_id, job.adopt_created_at = match.export_id, match.created_at
            jobs.append(job)
        if saved:
            LOGGER.info(
                "stream '%s'%s: %d export(s) saved by the last run match no window planned now "
                "(the windows changed); left alone",
                stream.name,
                of,
                len(saved),
            )
    return jobs
