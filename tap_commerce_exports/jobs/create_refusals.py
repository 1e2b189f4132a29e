"""One clock for an account's refused creates ("not now", HTTP 503).

Why a clock of its own, per account: a refusal to *start* an export says nothing about
one stream. The server runs only a few exports for the account, or none outside its
hours, so asking again for another stream a second later is just another refusal (and
one a second for minutes is what a polite client must not do). So every stream of the
account waits on the same clock: the waits double from ``base`` (``poll_interval``) up
to :data:`MAX_DELAY` minutes, never less than the server's ``Retry-After``, and they
are not bounded by ``poll_max_interval`` (that one is about status checks). The clock
restarts only when a create is accepted; how long the account has been refusing is what
``export_timeout`` is measured against, for all its streams at once.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest wait between two refused creates (unless the server asks for longer).
MAX_DELAY = 300.0


@dataclass
class CreateRefusals:
    """Refused creates of one account, since its last accepted one."""

    base: float
    max_delay: float = MAX_DELAY
    refusals: int = 0
    since: float | None = None  # monotonic, first refusal of this run of refusals
    blocked_until: float = 0.0
    reason: str | None = None  # the server's own words, last refusal

    def refused(self, now: float, retry_after: float | None, reason: str | None) -> float:
        """Note a refusal at ``now``; return the seconds every create now waits."""
        if self.since is None:
            self.since = now
        self.refusals += 1
        backoff = min(self.max_delay, self.base * (1 << min(self.refusals - 1, 30)))
        delay = max(backoff, retry_after or 0.0)
        self.blocked_until = now + delay
        self.reason = reason
        return delay

    def note(self, now: float, reason: str | None) -> None:
        """Note a refusal that sets no clock (the shared limit holds the creates)."""
        if self.since is None:
            self.since = now
        self.reason = reason

    def refusing_for(self, now: float) -> float:
        return 0.0 if self.since is None else now - self.since

    def accepted(self) -> None:
        """A create went through: the account takes exports again."""
        self.refusals = 0
        self.since = None
        self.blocked_until = 0.0
        self.reason = None
