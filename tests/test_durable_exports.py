"""Durable exports, engine side: adopting saved exports, lost create answers, retries and splits.

Driven through a scripted fake provider (the engine's own tests' fake, plus what a
durable run needs: exports made by an earlier run, a list lookup, lost answers, exports
that fail above some span). Every new transition of the job's life has its spec here:
QUEUED -> WAITING (adopt), WAITING -> QUEUED (retry or replace), DOWNLOADING -> QUEUED
(files gone), WAITING -> SPLIT.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest

from tap_commerce_exports.errors import ExportFailed
from tap_commerce_exports.http.download import DownloadError
from tap_commerce_exports.jobs.job import ExportJob, IllegalTransition, JobState
from tap_commerce_exports.providers.base import (
    CreateAnswerLost,
    ExportGone,
    ExportPhase,
    ExportStatus,
    FoundExport,
)
from tap_commerce_exports.singer.bookmarks import (
    SavedExport,
    read_exports,
    write_bookmark,
    write_exports,
)
from tap_commerce_exports.windows import Window
from tests.engine_clock import JumpClock
from tests.engine_fakes import (
    CUSTOMERS,
    ORDERS,
    T0,
    ScriptedDownloader,
    ScriptedProvider,
    fast_retries,  # noqa: F401 - autouse: pauses between retries take no real time
    jobs_for,
    make,
)

DAY = timedelta(days=1)


class DurableFake(ScriptedProvider):
    """The engine's fake provider, with exports from an earlier run and a list endpoint."""

    def __init__(self, statuses=None, *, fail_above: timedelta | None = None, can_list: bool = True) -> None:
        super().__init__(statuses)
        self.fail_above = fail_above
        self.can_find_exports = can_list
        self.windows: dict[str, Window] = {}
        self.lose_answers = 0  # the next N creates make the export, then the answer is lost
        self.drop_creates = 0  # the next N creates are lost before the provider made anything
        self.finds: list[Window] = []

    def earlier_export(self, export_id: str, export_type: str, window: Window, script: list[str]) -> None:
        """An export an earlier run created (its id is in the saved state)."""
        with self.lock:
            self.by_id[export_id] = (export_type, self.index(window))
            self.windows[export_id] = window
            self.scripts[export_id] = list(script)
            self.checks[export_id] = 0
            self.url_versions[export_id] = 0

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        if self.drop_creates:
            self.drop_creates -= 1
            raise CreateAnswerLost("POST exports/ answered HTTP 502")
        status = super().create_export(export_type, window)
        with self.lock:
            self.windows[status.export_id] = window
            if self.fail_above is not None and window.end - window.start > self.fail_above:
                self.scripts[status.export_id] = ["pending", "error"]
        if self.lose_answers:
            self.lose_answers -= 1
            raise CreateAnswerLost("POST exports/ answered HTTP 502")
        return status

    def get_export(self, export_id: str) -> ExportStatus:
        if export_id not in self.scripts:
            raise ExportGone(export_id)
        return super().get_export(export_id)

    def find_export(self, export_type: str, window: Window, since: datetime) -> ExportStatus | None:
        self.finds.append(window)
        with self.lock:
            for export_id, seen in reversed(list(self.windows.items())):
                if seen == window and self.by_id[export_id][0] == export_type:
                    return ExportStatus(export_id, ExportPhase.PENDING, "pending")
        return None


def adopted(job: ExportJob, export_id: str) -> ExportJob:
    job.adopt_id = export_id
    job.adopt_created_at = T0
    return job


def run_all(orch, jobs, on_exports=None):
    return [(j.stream.name, j.window, j.state, j.error) for j in orch.run(jobs, on_exports=on_exports)]


# ------------------------------------------------------------------ adoption
def test_a_saved_export_is_followed_without_creating_another(tmp_path):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 3))
    provider.earlier_export("77", "order_list", jobs[1].window, ["pending", "available"])
    adopted(jobs[1], "77")
    seen = run_all(make(provider, tmp_path, wall_clock=lambda: T0 + timedelta(seconds=1)), jobs)
    assert [s[2] for s in seen] == [JobState.READY] * 3
    assert sorted(provider.created) == [("order_list", 0), ("order_list", 2)]  # none for window 1
    assert provider.checks["77"] >= 1


def test_an_adopted_export_counts_its_age_towards_export_timeout(tmp_path):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 1))
    provider.earlier_export("77", "order_list", jobs[0].window, ["pending"])
    adopted(jobs[0], "77")
    # created 2 days ago by the wall clock: far past the 10 s export_timeout
    orch = make(provider, tmp_path, wall_clock=lambda: T0 + 2 * DAY)
    [(_, _, state, error)] = run_all(orch, jobs)
    assert state is JobState.FAILED and "export_timeout" in str(error)
    assert provider.created == []


@pytest.mark.parametrize(
    ("script", "why"),
    [(None, "from the last run is gone"), (["error"], "from the last run ended with status 'error'")],
    ids=["gone", "failed"],
)
def test_a_saved_export_that_is_gone_or_failed_is_replaced_with_a_line_saying_why(
    tmp_path, caplog, script, why
):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 2))
    if script is not None:
        provider.earlier_export("77", "order_list", jobs[0].window, script)
    adopted(jobs[0], "77")
    with caplog.at_level(logging.WARNING, "tap_commerce_exports.jobs"):
        seen = run_all(make(provider, tmp_path), jobs)
    assert [s[2] for s in seen] == [JobState.READY, JobState.READY]
    assert sorted(provider.created) == [("order_list", 0), ("order_list", 1)]
    assert f"export 77 {why}; creating a new one" in caplog.text


def test_a_saved_export_whose_files_are_gone_is_replaced(tmp_path, caplog):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 1))
    provider.earlier_export("77", "order_list", jobs[0].window, ["available"])
    downloader = ScriptedDownloader(
        provider, {"fake://77/v0": [DownloadError("HTTP 404 from the file host")] * 9}
    )
    adopted(jobs[0], "77")
    with caplog.at_level(logging.WARNING, "tap_commerce_exports.jobs"):
        [(_, _, state, _)] = run_all(make(provider, tmp_path, downloader=downloader), jobs)
    assert state is JobState.READY
    assert provider.created == [("order_list", 0)]
    assert "export 77 from the last run can't be downloaded" in caplog.text


def test_a_job_moves_only_along_the_durable_edges():
    job = jobs_for((ORDERS, 1))[0]
    job.move(JobState.QUEUED, JobState.WAITING)  # adopt
    job.move(JobState.WAITING, JobState.QUEUED)  # retry / replace
    job.move(JobState.QUEUED, JobState.CREATING)
    job.move(JobState.CREATING, JobState.WAITING)
    job.move(JobState.WAITING, JobState.DOWNLOADING)
    job.move(JobState.DOWNLOADING, JobState.QUEUED)  # files gone
    job.move(JobState.QUEUED, JobState.WAITING)
    job.move(JobState.WAITING, JobState.SPLIT)
    with pytest.raises(IllegalTransition):
        job.move(JobState.SPLIT, JobState.QUEUED)  # a split job is final


def test_a_window_with_no_saved_export_follows_one_the_provider_lists_for_it(tmp_path, caplog):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 2))
    provider.earlier_export("77", "order_list", jobs[0].window, ["pending", "available"])
    provider.earlier_export("78", "order_list", jobs[1].window, ["available"])
    listed = [
        FoundExport(
            jobs[0].window.start, jobs[0].window.end, ExportStatus("77", ExportPhase.PENDING, "pending"), T0
        ),
        FoundExport(
            jobs[1].window.start, jobs[1].window.end, ExportStatus("78", ExportPhase.DONE, "available"), T0
        ),
    ]
    provider.recent_exports = lambda export_type, since: listed if export_type == "order_list" else []  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, "tap_commerce_exports.jobs"):
        seen = run_all(make(provider, tmp_path, wall_clock=lambda: T0 + timedelta(seconds=1)), jobs)
    assert [s[2] for s in seen] == [JobState.READY, JobState.READY]
    assert provider.created == [("order_list", 1)]  # a finished one listed is not followed
    assert "following export 77 an earlier run made, found in the provider's list" in caplog.text


def test_adopted_exports_ready_far_ahead_never_hold_back_the_windows_before_them(tmp_path):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 6))
    for job in jobs[2:]:  # four exports of later windows, ready at once, fill every place
        provider.earlier_export(f"7{job.seq}", "order_list", job.window, ["available"])
        adopted(job, f"7{job.seq}")
    orch = make(provider, tmp_path, max_concurrent_exports=1, wall_clock=lambda: T0 + timedelta(seconds=1))
    seen: list = []
    worker = threading.Thread(target=lambda: seen.extend(run_all(orch, jobs)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the engine waited forever"
    assert [s[2] for s in seen] == [JobState.READY] * 6
    assert provider.created == [("order_list", 0), ("order_list", 1)]


# ------------------------------------------------------------------ lost create answers
def test_a_create_whose_answer_was_lost_follows_the_export_the_provider_made(tmp_path, caplog):
    provider = DurableFake()
    provider.lose_answers = 1
    jobs = jobs_for((ORDERS, 2))
    with caplog.at_level(logging.WARNING, "tap_commerce_exports.jobs"):
        seen = run_all(make(provider, tmp_path, max_concurrent_exports=1), jobs)
    assert [s[2] for s in seen] == [JobState.READY, JobState.READY]
    assert provider.created == [("order_list", 0), ("order_list", 1)]  # one export per window
    assert "got no answer (POST exports/ answered HTTP 502), but export 1000 was made" in caplog.text


def test_a_lost_create_the_provider_never_made_is_sent_again(tmp_path):
    provider = DurableFake()
    provider.drop_creates = 1
    [(_, _, state, _)] = run_all(make(provider, tmp_path), jobs_for((ORDERS, 1)))
    assert state is JobState.READY
    assert provider.created == [("order_list", 0)] and len(provider.finds) == 1


def test_a_provider_that_cannot_list_exports_creates_again_and_says_a_second_may_run(tmp_path, caplog):
    provider = DurableFake(can_list=False)
    provider.lose_answers = 1
    with caplog.at_level(logging.WARNING, "tap_commerce_exports.jobs"):
        [(_, _, state, _)] = run_all(make(provider, tmp_path), jobs_for((ORDERS, 1)))
    assert state is JobState.READY
    assert len(provider.created) == 2 and provider.finds == []
    assert "may leave a second one running unused" in caplog.text


def test_creates_that_keep_losing_their_answer_fail_the_window_in_our_words(tmp_path):
    provider = DurableFake()
    provider.drop_creates = 99
    [(_, _, state, error)] = run_all(make(provider, tmp_path), jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED and isinstance(error, ExportFailed)
    assert "creating the export got no answer 3 times" in str(error)


# ------------------------------------------------------------------ retries and splits
def test_a_failed_export_is_retried_within_its_budget(tmp_path, caplog):
    provider = DurableFake({("order_list", 0): ["pending", "error"]})
    with caplog.at_level(logging.WARNING, "tap_commerce_exports.jobs"):
        [(_, _, state, error)] = run_all(make(provider, tmp_path, export_attempts=3), jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED and "(3 attempts)" in str(error)
    assert provider.created == [("order_list", 0)] * 3
    assert "(attempt 1 of 3); creating a new one" in caplog.text


def test_an_export_that_fails_once_is_retried_and_its_window_synced(tmp_path):
    provider = DurableFake()
    jobs = jobs_for((ORDERS, 2))
    original = provider.create_export
    first = {"done": False}

    def fail_once(export_type, window):
        status = original(export_type, window)
        if not first["done"]:
            first["done"] = True
            provider.scripts[status.export_id] = ["error"]
        return status

    provider.create_export = fail_once  # type: ignore[method-assign]
    seen = run_all(make(provider, tmp_path, max_concurrent_exports=1), jobs)
    assert [(s[1], s[2]) for s in seen] == [
        (jobs[0].window, JobState.READY),
        (jobs[1].window, JobState.READY),
    ]
    assert provider.created == [("order_list", 0), ("order_list", 0), ("order_list", 1)]


def test_a_window_that_keeps_failing_is_split_and_its_halves_come_in_window_order(tmp_path):
    # exports over more than one day fail: a 4-day window becomes four 1-day ones
    provider = DurableFake(fail_above=DAY)
    jobs = [
        ExportJob(ORDERS, Window(T0, T0 + 4 * DAY), 0),
        ExportJob(ORDERS, Window(T0 + 4 * DAY, T0 + 5 * DAY), 1),
    ]
    jobs.append(ExportJob(CUSTOMERS, Window(T0, T0 + DAY), 0))
    orch = make(provider, tmp_path, export_attempts=1, min_split_span=DAY)
    seen = run_all(orch, jobs)
    orders = [(s[1].start, s[1].end, s[2]) for s in seen if s[0] == "orders"]
    edges = [T0 + n * DAY for n in range(6)]
    assert orders == [(edges[i], edges[i + 1], JobState.READY) for i in range(5)]
    assert [s[2] for s in seen if s[0] == "customers"] == [JobState.READY]


def test_a_window_at_its_smallest_span_fails_its_stream_and_later_windows_wait(tmp_path):
    provider = DurableFake(fail_above=DAY / 2)
    jobs = jobs_for((ORDERS, 3))
    seen = run_all(make(provider, tmp_path, export_attempts=1, min_split_span=DAY), jobs)
    assert [s[2] for s in seen] == [JobState.FAILED]  # later windows are not emitted
    assert "at its smallest span" in str(seen[0][3])


def test_a_stuck_export_is_a_timeout_error_not_a_split(tmp_path):
    provider = DurableFake({("order_list", 0): ["pending"]})
    jobs = [ExportJob(ORDERS, Window(T0, T0 + 4 * DAY), 0)]
    clock = JumpClock()
    orch = make(
        provider,
        tmp_path,
        poll_interval=5,
        poll_max_interval=120,
        export_timeout=3600,
        export_attempts=1,
        min_split_span=DAY,
        **clock.engine_options(),
    )
    [(_, window, state, error)] = run_all(orch, jobs)
    assert state is JobState.FAILED and "export_timeout" in str(error)
    assert window == jobs[0].window and len(provider.created) == 1


# ------------------------------------------------------------------ saving them
def test_the_consumer_is_told_of_each_export_and_sees_at_most_twice_the_places_in_flight(tmp_path):
    provider = DurableFake()
    orch = make(provider, tmp_path, max_concurrent_exports=2)
    sizes: list[int] = []
    ids: set[str] = set()

    def saved() -> None:
        in_flight = orch.exports_in_flight()
        sizes.append(len(in_flight))
        ids.update(j.export_id for j in in_flight if j.export_id)

    seen = run_all(orch, jobs_for((ORDERS, 5), (CUSTOMERS, 5)), on_exports=saved)
    assert len(seen) == 10
    assert sizes and max(sizes) <= 4
    assert ids == set(provider.by_id)  # every export was there to be saved at least once


def test_saved_exports_round_trip_and_leave_the_state_when_none_are_left():
    state: dict = {}
    exports = [SavedExport("12", T0, T0 + DAY, T0), SavedExport("13", T0 + DAY, T0 + 2 * DAY, None)]
    write_exports(state, "orders", "demo-store", exports)
    assert read_exports(state, "orders", "demo-store") == exports
    assert read_exports(state, "orders", "other-store") == []
    write_exports(state, "orders", "demo-store", [])
    assert state == {"bookmarks": {}}, "an entry that only held exports leaves no trace"
    write_bookmark(state, "orders", "demo-store", T0)
    write_exports(state, "orders", "demo-store", exports)
    write_exports(state, "orders", "demo-store", [])
    assert state["bookmarks"]["orders"]["partitions"][0]["replication_key_value"] == "2025-01-01T00:00:00Z"
    assert "exports" not in state["bookmarks"]["orders"]["partitions"][0]
