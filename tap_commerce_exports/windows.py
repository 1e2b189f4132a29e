"""Date windows, and THE boundary rule.

The boundary rule (the one place it lives):

* A window is half-open: ``[start, end)``.
* The tap asks the provider for ``start .. end`` with ``end`` sent as the exact boundary
  instant. Whether the provider treats that end as inclusive is not published
  (Next Commerce) or not certain (Clover).
* The tap then keeps only rows whose window field (``ExportStreamDefinition.window_field``)
  is in ``[start, end)`` (``files.window.WindowFilter``). A row exactly on ``end`` is
  dropped here and kept by the next window, which asks from that same instant.

So under either provider rule every row belongs to exactly one window: no row on a
boundary is lost, none is duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone


@dataclass(frozen=True, order=True)
class Window:
    """A half-open date range ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{iso_z(self.start)}..{iso_z(self.end)}"


def iso_z(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, whole seconds unless a fraction exists."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def plan_windows(start: datetime, end: datetime, size: timedelta) -> list[Window]:
    """Split ``[start, end)`` into consecutive windows of at most ``size``."""
    if size <= timedelta(0):
        raise ValueError("window size must be positive")
    windows: list[Window] = []
    cursor = start
    while cursor < end:
        upper = min(cursor + size, end)
        windows.append(Window(cursor, upper))
        cursor = upper
    return windows


def split_window(window: Window, smallest: timedelta | None) -> tuple[Window, Window] | None:
    """``window`` cut in two at a whole second, or None below ``smallest`` (or no split)."""
    if smallest is None:
        return None
    half = timedelta(seconds=int((window.end - window.start).total_seconds() // 2))
    if half < smallest or half <= timedelta(0):
        return None
    middle = window.start + half
    return Window(window.start, middle), Window(middle, window.end)


def cut_window(window: Window, span: timedelta) -> list[Window]:
    """``window`` cut into the fewest equal pieces (at whole seconds) of at most ``span``."""
    total = int((window.end - window.start).total_seconds())
    step = max(1, int(span.total_seconds()))
    count = max(1, -(-total // step))
    bounds = [window.start + timedelta(seconds=total * i // count) for i in range(count)] + [window.end]
    return [Window(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
