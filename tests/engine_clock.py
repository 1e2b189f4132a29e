"""Virtual time for the export engine's specs of timing (back-off, Retry-After, timeouts).

The engine reads its time from ``clock`` / ``wall_clock`` and sleeps through ``wait``
(its one idle wait, on its condition). :class:`JumpClock` gives all three: reading is
free, and each idle wait lets the other threads run an instant, then moves time on by
exactly what the engine asked to wait. A spec then reads exact virtual seconds (gaps of
5, 10, 20 s between refused creates) and takes no real time; nothing depends on how
fast the machine is.

Use it where time is what is specified. Specs that wait on another thread while an
export stays pending (webhooks, races) keep real time: virtual time would race ahead
of them.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any


class JumpClock:
    """Monotonic seconds from 0 and a wall clock that follows them; waits jump."""

    def __init__(self, wall_start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = 0.0
        self.wall_start = wall_start or datetime(2025, 1, 1, tzinfo=timezone.utc)
        self.waits: list[float] = []  # every idle wait the engine asked for

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def wall(self) -> datetime:
        return self.wall_start + timedelta(seconds=self())

    def wait(self, condition: threading.Condition, seconds: float) -> bool:
        notified = condition.wait(0)  # releases the lock an instant: other threads move jobs
        with self._lock:
            self._now += max(0.0, seconds)
            self.waits.append(seconds)
        return notified

    def engine_options(self) -> dict[str, Any]:
        """The engine's keyword arguments that put it on this clock. Its requests run on
        its own thread (one worker): a request in flight on another thread would let
        the clock jump while it runs."""
        return {"clock": self, "wall_clock": self.wall, "wait": self.wait, "request_workers": 1}
