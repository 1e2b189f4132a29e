"""A webhook's wake-up that comes before the engine knows its export (the create's answer
still on its way) is kept, so the delivery answered 200 is not lost."""

from __future__ import annotations

from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.providers.base import ExportStatus
from tap_commerce_exports.windows import Window
from tests.engine_clock import JumpClock
from tests.engine_fakes import ORDERS, T0, make
from tests.test_durable_exports import DAY, DurableFake, run_all


class TimedFake(DurableFake):
    """Notes the engine's (virtual) time of each status check."""

    def __init__(self, statuses, clock: JumpClock) -> None:
        super().__init__(statuses)
        self.clock = clock
        self.checked_at: list[float] = []

    def get_export(self, export_id: str) -> ExportStatus:
        self.checked_at.append(self.clock())
        return super().get_export(export_id)


def test_a_wake_up_that_beats_its_create_s_answer_is_kept_and_checks_the_export_at_once(tmp_path):
    """The provider may announce an export ready before the answer to its create reached
    the tap; the delivery was answered 200 (and is not sent again), so the engine keeps
    the wake-up and checks that export as soon as it knows it, not a poll later."""
    clock = JumpClock()
    provider = TimedFake({("order_list", 0): ["available"]}, clock)  # ready at its first check
    orch = make(
        provider,
        tmp_path,
        webhook_active=True,
        poll_interval=3600,
        poll_max_interval=3600,
        export_timeout=7200,
        **clock.engine_options(),
    )
    assert orch.wake("1000") is False  # no job has export 1000 yet: kept
    assert orch.wake("9999", "elsewhere") is False  # another's: kept, never matched
    seen = run_all(orch, [ExportJob(ORDERS, Window(T0, T0 + DAY), 0)])
    assert [state for _, _, state, _ in seen] == [JobState.READY]
    # the time of the check, not the run's end: virtual time jumps while files download
    assert provider.checked_at == [0.0], "checked at once, not after poll_max_interval"
