"""Deterministic building blocks shared by both providers' data generators.

No table of rows is ever stored. Every object is a pure function of
``(seed, export type, UTC day, index within the day)``:

* how many objects a day holds, and their instants, come from a PRNG seeded with
  ``(seed, type, day)``; so raising ``data_end`` only adds days and never changes an
  earlier one, and the same seed gives byte-identical files;
* about half the days start with an object exactly at midnight UTC, so window
  boundaries are always exercised;
* identifiers are built from ``(day, index)`` so they are unique per type without
  any counter shared across days.

Instants are integer microseconds since the epoch (Clover uses milliseconds; its
generator truncates).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache

US_PER_DAY = 86_400_000_000
US_PER_S = 1_000_000
#: Days since 1970-01-01 of 2000-01-01: ids count days from here.
ID_ANCHOR_DAY = 10_957
#: Objects one day may hold (ids reserve this many slots per day).
MAX_PER_DAY = 99_999
_MASK = (1 << 64) - 1


def mix64(*parts: int) -> int:
    """SplitMix64-style hash of a tuple of ints: fast, stable across runs and Pythons."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK
        h ^= h >> 29
    return h


def name_code(name: str) -> int:
    """A stable int for a type name (``hash()`` is salted per process, so not that)."""
    code = 0
    for ch in name.encode():
        code = (code * 131 + ch) & _MASK
    return code


def day_of(us: int) -> int:
    """UTC day number (days since the epoch) holding instant ``us``."""
    return us // US_PER_DAY


def day_count(seed: int, type_code: int, day: int, base: int) -> int:
    """Objects on ``day``: ``base`` varied deterministically by -30 %..+30 %."""
    if base <= 0:
        return 0
    u = mix64(seed, type_code, day, 1) / float(1 << 64)
    return min(MAX_PER_DAY, max(0, round(base * (0.7 + 0.6 * u))))


@lru_cache(maxsize=4096)
def day_instants(seed: int, type_code: int, day: int, count: int) -> tuple[int, ...]:
    """Sorted instants (µs) of the ``count`` objects of ``day``.

    Two thirds are whole seconds, the rest carry microseconds; on about half the days
    the first object sits exactly on midnight UTC (a window boundary).
    """
    if count <= 0:
        return ()
    rng = random.Random(mix64(seed, type_code, day, 2))
    start = day * US_PER_DAY
    out = []
    for _ in range(count):
        off = rng.randrange(US_PER_DAY)
        if rng.random() < 0.67:
            off -= off % US_PER_S
        out.append(start + off)
    if mix64(seed, type_code, day, 3) & 1:
        out[0] = start
    out.sort()
    return tuple(out)


@lru_cache(maxsize=4096)
def day_hashes(seed: int, type_code: int, day: int, count: int) -> tuple[int, ...]:
    """One 64-bit hash per object of ``day``: the per-row randomness (C-speed PRNG)."""
    rng = random.Random(mix64(seed, type_code, day, 6))
    bits = rng.getrandbits
    return tuple(bits(64) for _ in range(count))


def line_hash(h: int, line: int) -> int:
    """Cheap distinct hash for line ``line`` of a parent whose hash is ``h``."""
    return h ^ (((line + 1) * 0x9E3779B97F4A7C15) & _MASK)


def slot_id(day: int, index: int) -> int:
    """Integer id unique per type: day since 2000 times 100000 plus the index."""
    return (day - ID_ANCHOR_DAY) * (MAX_PER_DAY + 1) + index + 1


# --- ISO-8601 formatting with varying offsets -----------------------------------

#: UTC offsets (minutes) a timestamp cell may be written in; 0 appears both as "Z"
#: (None) and "+00:00" so both spellings show up.
OFFSETS: tuple[int | None, ...] = (None, 120, -300, 330, 0, 60, -480, 540, None)


@lru_cache(maxsize=8192)
def _date_str(day: int) -> str:
    import datetime as _dt

    return (_dt.date(1970, 1, 1) + _dt.timedelta(days=day)).isoformat()


def _offset_str(minutes: int | None) -> str:
    if minutes is None:
        return "Z"
    sign = "+" if minutes >= 0 else "-"
    m = abs(minutes)
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


_OFFSET_STRS = tuple(_offset_str(m) for m in OFFSETS)
_OFFSET_US = tuple((m or 0) * 60 * US_PER_S for m in OFFSETS)
assert len(OFFSETS) == 9


#: ``HH:MM:SS`` of every second of a day (86,400 short strings, built once).
_HMS: tuple[str, ...] = tuple(
    f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
)
_DATE_T: dict[int, str] = {}


def fmt_iso(us: int, variant: int) -> str:
    """Instant ``us`` as ISO-8601 in the offset picked by ``variant``.

    The instant is exact: the local wall time is shifted by the offset it names. The
    fraction is printed only when the instant has one, so whole seconds and
    microsecond timestamps both appear in the same column. (Hot path of million-row
    files: table lookups instead of datetime formatting.)
    """
    k = variant % 9
    local = us + _OFFSET_US[k]
    day, rem = divmod(local, US_PER_DAY)
    secs, micro = divmod(rem, US_PER_S)
    date_t = _DATE_T.get(day)
    if date_t is None:
        date_t = _DATE_T[day] = _date_str(day) + "T"
    if micro:
        return f"{date_t}{_HMS[secs]}.{micro:06d}{_OFFSET_STRS[k]}"
    return date_t + _HMS[secs] + _OFFSET_STRS[k]


def iso_formatter(offsets: tuple[int | str | None, ...] | None) -> Callable[[int, int], str]:
    """A :func:`fmt_iso` that writes instants in ``offsets`` (minutes east of UTC; ``"Z"``
    or None for the letter) instead of the default mix; None gives :func:`fmt_iso`.

    Why: which UTC offsets a store's timestamps carry is not published, so the sandbox
    can be told to write extreme or odd ones (-12:00, -03:30, +05:45, +14:00).
    """
    if offsets is None:
        return fmt_iso
    minutes = [None if m in (None, "Z") else int(m) for m in offsets]
    strs = tuple(_offset_str(m) for m in minutes)
    shifts = tuple((m or 0) * 60 * US_PER_S for m in minutes)
    n = len(strs)

    def fmt(us: int, variant: int) -> str:
        k = variant % n
        day, rem = divmod(us + shifts[k], US_PER_DAY)
        secs, micro = divmod(rem, US_PER_S)
        date_t = _DATE_T.get(day)
        if date_t is None:
            date_t = _DATE_T[day] = _date_str(day) + "T"
        if micro:
            return f"{date_t}{_HMS[secs]}.{micro:06d}{strs[k]}"
        return date_t + _HMS[secs] + strs[k]

    return fmt


def fmt_utc_z(us: int) -> str:
    """Instant as ``...Z`` (used where the provider is known to answer in UTC)."""
    return fmt_iso(us, 0)
