"""How long to wait before looking at a pending export again.

A check waits a fifth of the time already waited (bounded by ``poll_interval`` below
and ``poll_max_interval`` above), so an export that becomes ready is noticed at most
~20% (+ request latency) after the time waited so far, inside the 25% goal with headroom:
fast for quick exports, polite for slow ones (Next Commerce
asks for no more than a check every couple of minutes on long waits).
"""

from __future__ import annotations

WAITED_FRACTION = 0.2


def next_poll_delay(elapsed: float, poll_interval: float, poll_max_interval: float) -> float:
    """Seconds until the next status check of an export pending for ``elapsed`` seconds."""
    return min(poll_max_interval, max(poll_interval, elapsed * WAITED_FRACTION))
