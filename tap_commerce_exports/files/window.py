"""The half-open date window a file's records must fall in, and its column in a file.

Why the reader filters: whether a provider's ``date_to`` is inclusive is not published,
so a file may carry a row stamped exactly at the window's end. Keeping only
``start <= value < end`` makes adjacent windows ``[a, b)`` and ``[b, c)`` own every
boundary row exactly once, whichever rule the provider follows.

Why several names: the column holding that instant is not always called what the
stream's schema calls it (column names are not published). The filter carries every
name it may have; the reader takes the first one its file has.

A file with none of them is read whole: line-item files may carry no time at all (the
provider's line objects have none), and the server chose the file's rows by the range
asked. Its boundary rows are then trusted to the server: with an inclusive ``date_to`` a
row stamped exactly on a boundary comes in both windows' files, and the stream's key
dedupes it downstream. Wherever the column exists, the strict check above holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The type of a window column the schema has no property for (CSV: a date-time text).
WINDOW_COLUMN_SCHEMA: Mapping[str, Any] = {"type": ["string", "null"], "format": "date-time"}


@dataclass(frozen=True)
class WindowFilter:
    """Keep records whose window column lies in ``[start, end)``.

    Bounds are aware ``datetime``s for CSV (cells keep their own UTC offsets, so the
    reader parses the window cell and compares instants, never texts) and
    epoch-millisecond ints for Clover (compared as they are).

    ``field`` is the schema property whose type the window column gets, whatever the
    file calls it; ``names`` are the column names to look for, in order (empty: just
    ``field``).

    A record whose window cell is null is kept (the reader counts it): dropping it would
    lose data silently, while keeping it at worst duplicates it.
    """

    field: str
    start: object
    end: object
    names: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        """The column names to look for, in order."""
        return self.names or (self.field,)

    def find_column(
        self, columns: Iterable[str], normalize: Callable[[str], str] | None = None
    ) -> str | None:
        """The first candidate present in ``columns`` (names normalized first if asked)."""
        present = set(columns)
        for name in self.candidates:
            name = normalize(name) if normalize is not None else name
            if name in present:
                return name
        return None
