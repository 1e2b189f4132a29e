"""The half-open date window a file's records must fall in.

Why the reader filters: whether a provider's ``date_to`` is inclusive is not published,
so a file may carry a row stamped exactly at the window's end. Keeping only
``start <= value < end`` makes adjacent windows ``[a, b)`` and ``[b, c)`` own every
boundary row exactly once, whichever rule the provider follows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowFilter:
    """Keep records whose ``field`` lies in ``[start, end)``.

    Bounds are aware ``datetime``s for CSV (cells keep their own UTC offsets, so the
    reader parses the window cell and compares instants, never texts) and
    epoch-millisecond ints for Clover (compared as they are).

    A record whose field is null is kept (the reader counts it): dropping it would lose
    data silently, while keeping it at worst duplicates it.
    """

    field: str
    start: object
    end: object
