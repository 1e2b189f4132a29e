"""A client-side limiter shared by every thread that talks to one API with one token.

The published limits (Next Commerce 4 requests/s; Clover 16/s and 5 in flight) hold
in *any* 1-second window as the server sees it. Spacing sends alone does not give
that: the server stamps a request when it arrives, somewhere between our send and our
reading of the answer, so latency jitter bunches five spaced sends into one of its
seconds. So a request holds its place in the window from the moment it is sent until
one window after its answer came back: a new request goes out only while fewer than
the limit were sent or answered within the last window (+ a small margin). Whatever
the latency, the server can then never see more than the limit in any window. Sends
are also spaced (``1/rate``) so that the limit is used evenly, not in bursts.

It also caps requests in flight (Clover: 5 per token) and honours a server's
``Retry-After`` for everybody at once: calling a throttled API early only lengthens
the wait (Clover says so), so after a 429 no thread sends anything until the pause ends.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

#: Added to the window: room for the server's own clock and rounding.
WINDOW_MARGIN = 0.05


class RateLimiter:
    """At most ``rate`` requests in any sliding second + a cap in flight + a shared pause."""

    def __init__(
        self,
        rate: float,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = WINDOW_MARGIN,
    ) -> None:
        # rate 4 -> 4 per 1 s window; rate 0.5 -> 1 per 2 s; rate 4.5 -> 4 per 0.89 s
        self._limit = max(1, math.floor(rate))
        self._window = self._limit / rate + margin
        self._interval = 1.0 / rate
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._answered: deque[float] = deque()  # when recent requests were answered
        self._sending = 0  # requests sent and not answered yet
        self._lock = threading.Lock()
        self._answer = threading.Condition(self._lock)
        self._clock = clock
        self._sleep = sleep
        self._in_flight = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None

    @property
    def window(self) -> float:
        """Seconds in which at most :attr:`limit` requests are sent (margin included)."""
        return self._window

    @property
    def limit(self) -> int:
        return self._limit

    def pause(self, seconds: float) -> None:
        """Nobody sends for ``seconds`` from now (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def throttled(self, seconds: float, reason: str | None) -> bool:
        """A 429 answered a request sent through this limiter: pause. Returns whether
        the pause was taken as the app's (never, for one limiter alone)."""
        self.pause(seconds)
        return False

    def at_limit(self) -> bool:
        """Whether this limiter's own window or in-flight places are full now: a 429
        then may well be for its own limit."""
        with self._lock:
            now = self._clock()
            while self._answered and self._answered[0] <= now - self._window:
                self._answered.popleft()
            return self._sending + len(self._answered) >= self._limit

    def _turn(self) -> float | None:
        """Take a turn now (0.0), or say how long to sleep; None: wait for an answer.

        Caller holds the lock.
        """
        now = self._clock()
        while self._answered and self._answered[0] <= now - self._window:
            self._answered.popleft()
        start = max(now, self._next_slot, self._paused_until)
        if self._sending + len(self._answered) >= self._limit:
            if not self._answered:
                return None  # every place is held by a request still in flight
            start = max(start, self._answered[0] + self._window)
        if start > now + 1e-9:
            return start - now
        self._sending += 1
        self._next_slot = now + self._interval
        return 0.0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a turn, then hold an in-flight place for the request's duration."""
        if self._in_flight is not None:
            self._in_flight.acquire()
        try:
            while True:
                with self._lock:
                    wait = self._turn()
                    if wait is None:
                        self._answer.wait(self._window)
                        continue
                if wait == 0.0:
                    break
                self._sleep(wait)  # a pause may start meanwhile: the next turn sees it
            try:
                yield
            finally:
                with self._lock:
                    self._sending -= 1
                    self._answered.append(self._clock())
                    self._answer.notify_all()
        finally:
            if self._in_flight is not None:
                self._in_flight.release()


class Limiter(Protocol):
    """What an API client needs of a limiter: a turn per request, and a shared pause."""

    def slot(self) -> contextlib.AbstractContextManager[None]: ...

    def pause(self, seconds: float) -> None: ...

    def throttled(self, seconds: float, reason: str | None) -> bool: ...


#: Words of a 429's reason that name the app's limit, not the token's.
APP_WORDS = frozenset({"app", "application", "app-wide", "app's"})


class LimiterChain:
    """An account's own limiter (per token) and its app's (across accounts), held together.

    Why both: a platform may limit each token and, on top, the app that many accounts
    installed (Clover: 16/s and 5 in flight per token, 50/s and 10 in flight per app).
    The account's turn is taken first, then the app's, always in that order, so two
    accounts never wait on each other crosswise. A 429's pause concerns the token that
    was throttled: it pauses only the account's limiter, unless the 429 is the app's
    (:meth:`throttled`): then every account's requests pause, as the app's limit is
    what they all share (each account waiting out only its own pause would send the
    others' requests straight into the same 429).
    """

    def __init__(self, account: Limiter, app: Limiter) -> None:
        self.account = account
        self.app = app

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        with self.account.slot(), self.app.slot():
            yield

    def pause(self, seconds: float) -> None:
        self.account.pause(seconds)

    def throttled(self, seconds: float, reason: str | None) -> bool:
        """A 429 for this account's token: the app's limit when its reason names the app,
        or when the account's own limiter is nowhere near its limit (what the provider
        does not publish is which limit a 429 is for); the token's otherwise."""
        words = set((reason or "").lower().replace(".", " ").replace(",", " ").split())
        own = self.account.at_limit() if isinstance(self.account, RateLimiter) else True
        app = bool(words & APP_WORDS) or not own
        self.account.pause(seconds)
        if app:
            self.app.pause(seconds)
        return app
