"""The progress line: what a person reads during a long wait or a large sync.

Specs on the board's real counts and an injected clock; the reporter's thread is only
checked to start, stop and log nothing once the run has no window left."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.progress import Progress, ProgressReporter, duration
from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.windows import Window

ORDERS = ExportStreamDefinition("orders", "order_list", ("number",), "created_at", "x.json")
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def board_with(states: list[JobState], clock: Clock) -> JobBoard:
    board = JobBoard({"": object()}, refusal_base=1)  # type: ignore[dict-item]
    jobs = [
        ExportJob(ORDERS, Window(START + timedelta(days=i), START + timedelta(days=i + 1)), i)
        for i in range(len(states))
    ]
    board.add(jobs)
    for job, state in zip(jobs, states, strict=True):
        path = {
            JobState.QUEUED: [],
            JobState.WAITING: [JobState.CREATING, JobState.WAITING],
            JobState.DOWNLOADING: [JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING],
            JobState.READY: [JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING, JobState.READY],
            JobState.CONSUMED: [
                JobState.CREATING,
                JobState.WAITING,
                JobState.DOWNLOADING,
                JobState.READY,
                JobState.CONSUMED,
            ],
        }[state]
        for step in path:
            board.apply(job, lambda job=job, step=step: job.move(job.state, step))
            if step is JobState.WAITING:
                job.created_at = clock.now
    return board


def test_the_line_counts_windows_and_exports_and_gives_an_eta_at_the_pace_so_far(caplog):
    clock = Clock()
    states = [JobState.CONSUMED] * 4 + [JobState.WAITING] * 2 + [JobState.DOWNLOADING, JobState.READY]
    board = board_with(states + [JobState.QUEUED] * 4, clock)
    reporter = ProgressReporter(board, lambda: 41230, clock=clock)
    clock.now += 720  # 12 minutes into the run; the waiting exports were created at its start

    with caplog.at_level(logging.INFO, logger="tap_commerce_exports.progress"):
        progress = reporter.report()

    assert progress.done == 4 and progress.in_flight == 3 and progress.queued == 4 and progress.total == 12
    # 8 windows left at 4 windows per 12 minutes
    assert caplog.messages == [
        "progress: windows 4 done, 3 in flight, 4 queued of 12; exports 2 waiting (oldest 12m), "
        "1 downloading, 1 ready; 41,230 records; ETA 24m"
    ]


def test_no_eta_is_guessed_before_a_window_has_finished():
    clock = Clock()
    board = board_with([JobState.WAITING, JobState.QUEUED], clock)
    clock.now += 3900
    line = ProgressReporter(board, clock=clock).report().line()
    assert (
        line
        == "progress: windows 0 done, 1 in flight, 1 queued of 2; exports 1 waiting (oldest 1h05m); 0 records"
    )


def test_a_finished_run_logs_no_progress_line(caplog):
    clock = Clock()
    board = board_with([JobState.CONSUMED, JobState.CONSUMED], clock)
    with caplog.at_level(logging.INFO, logger="tap_commerce_exports.progress"):
        ProgressReporter(board, clock=clock).report()
    assert caplog.messages == []


def test_the_reporter_thread_stops_when_asked_and_an_interval_of_zero_starts_none():
    board = board_with([JobState.QUEUED], Clock())
    reporter = ProgressReporter(board, interval=3600)
    reporter.start()
    reporter.stop()  # returns at once: the thread waits on an event, not a sleep
    assert reporter._thread is not None and not reporter._thread.is_alive()
    silent = ProgressReporter(board, interval=0)
    silent.start()
    assert silent._thread is None


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0, 45, 89, 720, 3600, 3900)] == ["0s", "45s", "1m", "12m", "1h00m", "1h05m"]


def test_failed_windows_are_said_and_count_towards_the_pace():
    progress = Progress(
        done=2,
        failed=1,
        in_flight=0,
        ready=0,
        queued=3,
        waiting=0,
        downloading=0,
        oldest_wait=0,
        records=10,
        elapsed=90,
    )
    assert progress.eta() == 90.0
    assert "of 6 (1 failed)" in progress.line()
