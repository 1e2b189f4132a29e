"""Waiting for another thread or process without depending on the machine's speed.

A test never asserts how long something took, nor sleeps to let it happen: it waits for
the state it needs (``until``), and the only number is ``HANG``, a bound on a hang that
a loaded machine never comes near. Timing goals belong to ``make bench``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds a test waits for what must happen before it calls it a hang (never a goal).
HANG = 60.0


def until(condition: Callable[[], object], hang: float = HANG, every: float = 0.01) -> bool:
    """Whether ``condition()`` became true (polled every ``every`` s) within ``hang`` s."""
    deadline = time.monotonic() + hang
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True
