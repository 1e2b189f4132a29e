"""The provider's capacity for running exports when it is shared by the accounts.

Why learn it: a provider may run only "a few" exports at once, and whether that is per
account or for the whole app is not published (a 503 says only "busy"). When a
create is refused for an account that has NO export running while others of the run do,
the limit cannot be that account's own: the accounts share the server's places. From
then on the engine holds creates to what the server took (the exports running when it
said no), so a freed place goes to the next waiting create at once instead of each
account backing off on a doubling clock of its own while the server sits idle.

How it converges (better than plain AIMD, which halves and so leaves places unused):
a refusal at ``n`` running sets the limit to ``n`` (what was just proven to fit); after
``probe_after`` creates accepted at the full limit it tries one more place (additive
increase). A probe refused doubles ``probe_after`` (up to :data:`MAX_PROBE_AFTER`), so
a stable server costs fewer and fewer refusals; a probe accepted keeps the new place.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Creates accepted at the full limit before one more place is tried, at first...
PROBE_AFTER = 4
#: ...and at most (after refused probes).
MAX_PROBE_AFTER = 64


@dataclass
class SharedPlaces:
    """The learned limit on exports running at once across every account (None: none
    learned; creates are held only by each account's own places)."""

    limit: int | None = None
    probe_after: int = PROBE_AFTER
    accepted_at_limit: int = 0
    probing: bool = False  # the last place added is a try, not yet proven
    refusals: int = 0  # refusals taken as the shared limit (for the log)

    def allows(self, running: int) -> bool:
        """Whether one more create may go out with ``running`` exports running now."""
        return self.limit is None or running < self.limit

    def refused(self, running: int, account_running: int) -> bool:
        """A create was refused as busy with ``running`` exports of the run running, of
        which ``account_running`` are the refused account's own. Returns whether the
        refusal is taken as the shared limit (then the account keeps no clock of its own:
        the limit holds every create until a place frees)."""
        if running <= 0:
            return False  # nothing of ours runs: not a limit we fill (hours, other users)
        if self.limit is None and account_running > 0:
            return False  # may be the account's own cap: its own clock, as before
        self.limit = max(1, running if self.limit is None else min(running, self.limit))
        if self.probing:
            self.probe_after = min(MAX_PROBE_AFTER, self.probe_after * 2)
            self.probing = False
        self.accepted_at_limit = 0
        self.refusals += 1
        return True

    def accepted(self, running: int) -> None:
        """A create went through; ``running`` counts it. At the full limit, count towards
        the next probe, and probe (one more place) when due."""
        if self.limit is None:
            return
        if running >= self.limit and self.probing:  # the tried place is the server's
            self.limit = running
            self.probing = False
            self.accepted_at_limit = 0
            return
        if running >= self.limit:
            self.accepted_at_limit += 1
            if self.accepted_at_limit >= self.probe_after:
                self.limit += 1
                self.probing = True
                self.accepted_at_limit = 0
