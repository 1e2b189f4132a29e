"""The span of window a (stream, account) can export, learned from its failures.

Why: some providers fail an export above a size they do not publish. The engine finds
it by splitting a failing window (after ``export_attempts`` failures) until its halves
succeed; without memory, every later window of the same stream and account would start
again at full span and pay the same failed exports (each can be a long export at the
provider). So, per (stream, account):

* once a window failed past its budget, the pair's failures are taken as about size:
  a later failure splits at once, without the retries meant for passing faults;
* once a window succeeded after a split (or a span came from the saved state), later
  windows longer than that span are cut to it before they are created, and the next
  run plans its windows at it (``learned()``, saved in STATE by the Singer layer);
* the span grows back carefully: after :data:`GROW_AFTER` successes in a row at it, by
  half again, never to a span that failed in this run, never above the planned window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

#: Successes in a row at the learned span before a longer one is tried.
GROW_AFTER = 4
GROWTH = 1.5

Pair = tuple[str, str]


@dataclass
class PairSpan:
    works: timedelta | None = None  # the longest span proven to work (after a split)
    fails: timedelta | None = None  # the shortest span that failed past its budget, this run
    trying: timedelta | None = None  # a longer span being tried (not yet proven)
    successes: int = 0  # in a row at ``works``


class SpanMemory:
    """What each (stream, account) learned about the spans its exports can cover."""

    def __init__(
        self, learned: Mapping[Pair, timedelta] | None = None, smallest: timedelta | None = None
    ) -> None:
        self.smallest = smallest  # None: windows are never split, nothing to learn
        self._pairs: dict[Pair, PairSpan] = {
            pair: PairSpan(works=span) for pair, span in (learned or {}).items()
        }

    def _of(self, pair: Pair) -> PairSpan:
        return self._pairs.setdefault(pair, PairSpan())

    def failed_past_budget(self, pair: Pair, span: timedelta) -> None:
        """A window of ``span`` failed ``export_attempts`` times and is being split."""
        entry = self._of(pair)
        entry.fails = span if entry.fails is None else min(entry.fails, span)
        if entry.works is not None and entry.works >= span:
            entry.works = None  # it failed at a span once proven: prove a shorter one
        if entry.trying is not None and entry.trying >= span:
            entry.trying = None  # the longer span did not work: back to the proven one
        entry.successes = 0

    def splits_at_once(self, pair: Pair) -> bool:
        """Whether a failure of this pair splits its window at once (no retries)."""
        entry = self._pairs.get(pair)
        return entry is not None and entry.fails is not None

    def succeeded(self, pair: Pair, span: timedelta, planned: timedelta) -> None:
        """An export of ``span`` succeeded; ``planned`` is the run's window span."""
        entry = self._pairs.get(pair)
        if entry is None or (entry.fails is None and entry.works is None):
            return  # nothing was ever split here: nothing to learn
        if entry.trying is not None and span >= entry.trying:
            entry.works, entry.trying, entry.successes = span, None, 0  # proven now
        elif entry.works is None or span > entry.works:
            entry.works, entry.successes = span, 1
        elif span == entry.works:
            entry.successes += 1
        if entry.trying is None and entry.successes >= GROW_AFTER and entry.works < planned:
            grown = timedelta(seconds=int(min(planned, entry.works * GROWTH).total_seconds()))
            if entry.fails is None or grown < entry.fails:
                entry.trying, entry.successes = grown, 0

    def cap(self, pair: Pair) -> timedelta | None:
        """The longest span a window of this pair should be created at, or None."""
        if self.smallest is None:
            return None
        entry = self._pairs.get(pair)
        if entry is None:
            return None
        span = entry.trying or entry.works or (entry.fails / 2 if entry.fails else None)
        return None if span is None else max(span, self.smallest)

    def learned(self) -> dict[Pair, timedelta]:
        """The span each pair was proven to work at, where a window had to be split (for
        the next run; a longer span still being tried is not saved)."""
        return {pair: e.works for pair, e in self._pairs.items() if e.works is not None}
