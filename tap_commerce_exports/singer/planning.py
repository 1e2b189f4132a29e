"""Windows per (stream, account), from that pair's state: the jobs a run starts with.

Each pair starts at its bookmark less ``lookback`` (or ``start_date``), is cut into
windows by THE boundary rule (``windows.py``) at ``window_days`` or at the shorter span
its exports were found to work at (``jobs/spans.py``, saved on its partition), and each
window that has an export saved by the last run follows it instead of creating another.
State is read by key (``StateKeeper``), not by scanning every account's partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from tap_commerce_exports.jobs.job import ExportJob
from tap_commerce_exports.singer.bookmarks import StateKeeper
from tap_commerce_exports.windows import iso_z, plan_windows

if TYPE_CHECKING:
    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.singer.host import SyncStream

LOGGER = logging.getLogger("tap_commerce_exports.sync")


def plan_jobs(
    state: StateKeeper,
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
    state: StateKeeper, settings: Settings, streams: Sequence[SyncStream], account: str, *, many: bool
) -> list[ExportJob]:
    jobs: list[ExportJob] = []
    of = f" of '{account}'" if many else ""
    for stream in streams:
        start = settings.start_date
        bookmark = state.bookmark(stream.name, account)
        if bookmark is not None:
            start = max(start, bookmark - settings.lookback)
        span = state.span(stream.name, account)
        windows = plan_windows(
            start, settings.end_date, min(settings.window, span) if span else settings.window
        )
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
        saved = {(e.window_start, e.window_end): e for e in state.saved_exports(stream.name, account)}
        for i, w in enumerate(windows):
            job = ExportJob(stream=stream.definition, window=w, seq=i, account=account if many else "")
            match = saved.pop((w.start, w.end), None)
            if match is not None:
                job.follow_saved(match.export_id, match.created_at)
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


def learned_spans(
    state: StateKeeper, streams: Sequence[SyncStream], accounts: Iterable[str], *, many: bool
) -> dict[tuple[str, str], timedelta]:
    """(stream, the engine's account key) -> the span the last runs found to work."""
    spans: dict[tuple[str, str], timedelta] = {}
    for account in accounts:
        for stream in streams:
            span = state.span(stream.name, account)
            if span is not None:
                spans[stream.name, account if many else ""] = span
    return spans
