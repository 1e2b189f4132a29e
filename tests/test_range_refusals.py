"""A create refused for its range (HTTP 400): retried once with the window cut in two.

Why: a provider's published cap may be read more strictly than written (Clover's "at
most 30 days": does exactly 30 pass?), and the default window is exactly the cap."""

from __future__ import annotations

import logging
from datetime import timedelta

from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.providers.base import CreateRefused, ExportStatus
from tap_commerce_exports.windows import Window
from tests.engine_fakes import CUSTOMERS, ORDERS, T0, make
from tests.test_durable_exports import DAY, DurableFake, run_all


class CappedFake(DurableFake):
    """Refuses (400) every create whose range is ``cap`` or longer."""

    def __init__(self, cap: timedelta) -> None:
        super().__init__()
        self.cap = cap
        self.refused: list[Window] = []

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        if window.end - window.start >= self.cap:
            self.refused.append(window)
            raise CreateRefused("The maximum time range of an export is 30 days")
        return super().create_export(export_type, window)


def test_a_window_refused_for_its_range_is_retried_once_as_two_halves_in_window_order(tmp_path, caplog):
    provider = CappedFake(cap=30 * DAY)
    jobs = [
        ExportJob(ORDERS, Window(T0, T0 + 30 * DAY), 0),
        ExportJob(ORDERS, Window(T0 + 30 * DAY, T0 + 40 * DAY), 1),
        ExportJob(CUSTOMERS, Window(T0, T0 + 10 * DAY), 0),
    ]
    with caplog.at_level(logging.WARNING, logger="tap_commerce_exports"):
        seen = run_all(make(provider, tmp_path), jobs)
    orders = [(w.start, w.end, state) for name, w, state, _ in seen if name == "orders"]
    edges = [T0, T0 + 15 * DAY, T0 + 30 * DAY, T0 + 40 * DAY]
    assert orders == [(edges[i], edges[i + 1], JobState.READY) for i in range(3)]
    assert [state for name, _, state, _ in seen if name == "customers"] == [JobState.READY]
    assert provider.refused == [jobs[0].window]
    (line,) = [r.getMessage() for r in caplog.records if "cut in two" in r.getMessage()]
    assert 'HTTP 400: "The maximum time range of an export is 30 days"' in line
    assert "2025-01-01T00:00:00Z..2025-01-16T00:00:00Z" in line


def test_a_half_refused_again_fails_its_stream_with_the_server_s_words_and_no_third_try(tmp_path):
    provider = CappedFake(cap=DAY)
    jobs = [
        ExportJob(ORDERS, Window(T0, T0 + 4 * DAY), 0),
        ExportJob(ORDERS, Window(T0 + 4 * DAY, T0 + 5 * DAY), 1),
    ]
    seen = run_all(make(provider, tmp_path), jobs)
    assert [state for _, _, state, _ in seen] == [JobState.FAILED], "later windows are not emitted"
    message = str(seen[0][3])
    assert "refused to create the export again, for half its window" in message
    assert "HTTP 400" in message and "window_days" in message
    assert provider.refused == [jobs[0].window, Window(T0, T0 + 2 * DAY)], "once: no quarter is tried"
