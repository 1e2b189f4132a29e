"""A progress line a person can follow during a long wait or a large sync.

Why: an export can take an hour and a sync of a thousand accounts thousands of windows;
the engine's own lines (one per status check, one per window) say what happened to one
export, not how far the run is. This line says it for the whole run, at a bounded rate,
from a thread of its own: the record path never pays for it (it reads the board's counts
under the lock once a minute, and a records total the consumer keeps as a plain int).

    progress: windows 18 done, 4 in flight, 30 queued of 52; exports 3 waiting (oldest 12m), 1 downloading; 41,230 records; ETA 14m

The ETA is the windows not finished at the pace of those finished so far; it is left out
until a window has finished (during the first long wait nothing says how long it lasts).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.job import JobState

LOGGER = logging.getLogger("tap_commerce_exports.progress")

#: Seconds between two progress lines: a person reading a log, not a dashboard.
PROGRESS_INTERVAL = 60.0


@dataclass(frozen=True)
class Progress:
    """The run's windows and exports at one instant (jobs replaced by a split's halves
    are not counted: their halves are)."""

    done: int  # windows whose records were emitted
    failed: int
    in_flight: int  # creating, waiting or downloading
    ready: int  # downloaded, waiting for their turn to be emitted
    queued: int  # not created yet
    waiting: int  # exports created and not ready yet
    downloading: int
    oldest_wait: float  # seconds the longest-waiting export has waited
    records: int
    elapsed: float  # seconds since the run started

    @property
    def total(self) -> int:
        return self.done + self.failed + self.in_flight + self.ready + self.queued

    @property
    def remaining(self) -> int:
        return self.in_flight + self.ready + self.queued

    def eta(self) -> float | None:
        """Seconds to go at the pace so far, or None while no window has finished."""
        finished = self.done + self.failed
        if finished == 0 or self.elapsed <= 0:
            return None
        return self.remaining * self.elapsed / finished

    def line(self) -> str:
        parts = [
            f"windows {self.done} done, {self.in_flight} in flight, {self.queued} queued of {self.total}"
            + (f" ({self.failed} failed)" if self.failed else "")
        ]
        exports = [
            f"{self.waiting} waiting" + (f" (oldest {duration(self.oldest_wait)})" if self.waiting else "")
        ]
        if self.downloading:
            exports.append(f"{self.downloading} downloading")
        if self.ready:
            exports.append(f"{self.ready} ready")
        parts.append("exports " + ", ".join(exports))
        parts.append(f"{self.records:,} records")
        eta = self.eta()
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        return "progress: " + "; ".join(parts)


def duration(seconds: float) -> str:
    """A duration as a person reads it: 45s, 12m, 1h05m."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def snapshot(board: JobBoard, *, records: int, elapsed: float, now: float) -> Progress:
    """The board's counts at ``now`` (one pass under its lock)."""
    with board.cv:
        totals = board.totals.copy()
        waits = [
            now - j.created_at for j in board.jobs if j.state is JobState.WAITING and j.created_at is not None
        ]
    waiting, downloading = totals[JobState.WAITING], totals[JobState.DOWNLOADING]
    return Progress(
        done=totals[JobState.CONSUMED],
        failed=totals[JobState.FAILED],
        in_flight=totals[JobState.CREATING] + waiting + downloading,
        ready=totals[JobState.READY],
        queued=totals[JobState.QUEUED],
        waiting=waiting,
        downloading=downloading,
        oldest_wait=max(waits, default=0.0),
        records=records,
        elapsed=elapsed,
    )


class ProgressReporter:
    """Logs :func:`snapshot`'s line every ``interval`` seconds while the run has windows
    left, on a daemon thread, until :meth:`stop`."""

    def __init__(
        self,
        board: JobBoard,
        records: Callable[[], int] = lambda: 0,
        *,
        interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.records = records
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self) -> Progress:
        """Log the line now (if windows are left), and return what it said."""
        now = self.clock()
        progress = snapshot(self.board, records=self.records(), elapsed=now - self.started, now=now)
        if progress.remaining:
            LOGGER.info("%s", progress.line())
        return progress

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="export-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
