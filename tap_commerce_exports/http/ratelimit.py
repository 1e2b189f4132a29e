"""A client-side limiter shared by every thread that talks to one API with one token.

It spaces requests to at most ``rate`` per second, caps requests in flight (Clover: 5
per token), and honours a server's ``Retry-After`` for everybody at once: calling a
throttled API early only lengthens the wait (Clover says so), so after a 429 no thread
sends anything until the pause ends.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class RateLimiter:
    """Request spacing + concurrency cap + shared pause."""

    def __init__(
        self, rate: float, max_concurrent: int | None = None, clock=time.monotonic, sleep=time.sleep
    ) -> None:
        self._interval = 1.0 / rate
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._in_flight = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + self._interval
            return slot - now

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a turn, then hold an in-flight place for the request's duration."""
        if self._in_flight is not None:
            self._in_flight.acquire()
        try:
            while True:
                wait = self._reserve()
                if wait > 0:
                    self._sleep(wait)
                # a pause may have started while we slept: check again
                with self._lock:
                    if self._clock() + 1e-6 >= self._paused_until:
                        break
            yield
        finally:
            if self._in_flight is not None:
                self._in_flight.release()
