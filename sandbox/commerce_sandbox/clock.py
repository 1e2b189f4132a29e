"""Two clocks, for two different questions.

*Is the export ready yet?* is answered with :func:`time.monotonic`, so that a test
moving the wall clock (``clock_offset``/``fake_now``) never makes exports jump to ready,
and nothing in a request handler sleeps.

*What time is it for the outside world?* (``created_at``, signed-URL expiry, Clover's
availability windows) is answered by :class:`Clock.wall`, which tests may shift or
freeze through the config so they can place "now" inside or outside a window without
waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from commerce_sandbox.config import SandboxConfig, parse_instant


class Clock:
    """Wall and monotonic time as the sandbox sees them, driven by the live config."""

    def __init__(self, config_getter: Callable[[], SandboxConfig]) -> None:
        self._config = config_getter

    @staticmethod
    def mono() -> float:
        """Monotonic seconds: the only clock used for processing delays."""
        return time.monotonic()

    def wall(self) -> float:
        """Epoch seconds, honouring ``fake_now`` then ``clock_offset``."""
        cfg = self._config()
        if cfg.fake_now:
            return parse_instant(cfg.fake_now).timestamp()
        return time.time() + cfg.clock_offset

    def now(self) -> datetime:
        """:meth:`wall` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.wall(), tz=timezone.utc)


def iso_z(dt: datetime) -> str:
    """``2025-01-01T00:00:00Z`` style (seconds precision) for API timestamps."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
