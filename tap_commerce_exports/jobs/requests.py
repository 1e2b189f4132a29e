"""The engine's requests (creates and status checks) in flight at once.

Why more than one: each create or check is one request, and one thread sending them one
after another gets one per round trip: at a thousand accounts, the round trip, not the
provider's published rate, set the pace (12 creates/s against an app limit of 50/s, and
no status check while creates were still going out). With several accounts the engine
hands its requests to a few workers; the accounts' and the app's limiters
(``http/ratelimit.py``) still decide when each one is sent. One worker means no pool:
the request runs on the engine thread itself, as before (one account has no rate to
gain, and its specs read the engine's own order of requests).
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Workers for a run of several accounts (a published app-wide in-flight limit is 10).
WORKERS_FOR_MANY = 8


class RequestRunner:
    """Runs the engine's requests: inline (one worker) or on a small pool."""

    def __init__(
        self, workers: int, condition: threading.Condition, on_error: Callable[[BaseException], None]
    ) -> None:
        self.workers = max(1, workers)
        self._cv = condition  # the board's: a finished request wakes the engine
        self._on_error = on_error
        self._busy = 0
        self._pool = cf.ThreadPoolExecutor(self.workers, "export-request") if self.workers > 1 else None

    def free(self) -> int:
        """Requests that may start now (caller holds the board's lock); without a pool,
        any number: each runs to its end before the next."""
        return self.workers - self._busy if self._pool is not None else sys.maxsize

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)``: now on this thread (one worker), else on the pool. The
        caller holds no lock; with a pool it saw :meth:`free` > 0."""
        if self._pool is None:
            fn(*args)
            return
        with self._cv:
            self._busy += 1
        self._pool.submit(self._run, fn, args)

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - a bug: surfaced to the consumer
            self._on_error(exc)
        finally:
            with self._cv:
                self._busy -= 1
                self._cv.notify_all()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
