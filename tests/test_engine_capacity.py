"""The engine against a server whose capacity nobody publishes (issue 24), on virtual time.

A fake server shared by every account runs exports that take ``delay`` virtual seconds,
at most ``cap`` at once for the whole app (a create past it is refused as busy), and may
fail every export above a span. The engine's clock is a :class:`JumpClock`: each idle
wait moves time on by exactly what the engine asked, so the specs read exact virtual
seconds and take no real time.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta

from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.orchestrator import ExportOrchestrator
from tap_commerce_exports.providers.base import ExportPhase, ExportsBusy, ExportStatus
from tap_commerce_exports.windows import Window, plan_windows
from tests.engine_clock import JumpClock
from tests.engine_fakes import CUSTOMERS, ORDERS, T0
from tests.test_engine_accounts import AccountFake, AccountsDownloader, Alive


class IdleJumpClock(JumpClock):
    """Virtual time that moves only while the engine is idle AND no download is running:
    the fake downloads take real (if tiny) time on the pool's threads, and a jump while
    one runs would count it as many virtual seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.board = None

    def wait(self, condition, seconds: float) -> bool:
        if self.board is not None and self.board.totals[JobState.DOWNLOADING]:
            return condition.wait(0.002)  # real time: the download thread works
        return super().wait(condition, seconds)


class Server:
    """Exports of every account: how many run (virtual time), refusals, failures by span."""

    def __init__(
        self, clock: IdleJumpClock, *, cap: int | None = None, delay: float = 2.0, fail_above=None
    ) -> None:
        self.clock = clock
        self.cap = cap
        self.delay = delay
        self.fail_above: timedelta | None = fail_above
        self.lock = threading.Lock()
        self.ends: dict[tuple[str, str], float] = {}  # (account, export id) -> when it is done
        self.failing: set[tuple[str, str]] = set()
        self.refused = 0
        self.created = 0
        self.peak = 0

    def running(self, now: float) -> int:
        return sum(1 for end in self.ends.values() if end > now)


class ServerAccount(AccountFake):
    """One account of :class:`Server`."""

    def __init__(self, name: str, server: Server) -> None:
        super().__init__(name, Alive())
        self.server = server

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        server = self.server
        now = server.clock()
        with server.lock:
            if server.cap is not None and server.running(now) >= server.cap:
                server.refused += 1
                raise ExportsBusy(None, "Too many exports in progress")
            server.created += 1
        status = super().create_export(export_type, window)
        with server.lock:
            server.ends[self.name, status.export_id] = now + server.delay
            server.peak = max(server.peak, server.running(now))
            if server.fail_above is not None and window.end - window.start > server.fail_above:
                server.failing.add((self.name, status.export_id))
        return status

    def get_export(self, export_id: str) -> ExportStatus:
        server = self.server
        with server.lock:
            done = server.ends[self.name, export_id] <= server.clock()
            failed = (self.name, export_id) in server.failing
        if not done:
            return ExportStatus(export_id, ExportPhase.RUNNING, "running")
        if failed:
            return ExportStatus(export_id, ExportPhase.FAILED, "failed")
        return ExportStatus(export_id, ExportPhase.DONE, "available")


def accounts(server: Server, count: int) -> dict[str, ServerAccount]:
    return {f"m{i}": ServerAccount(f"m{i}", server) for i in range(count)}


def engine(providers, tmp_path, clock: IdleJumpClock, **kwargs) -> ExportOrchestrator:
    options = dict(max_concurrent_exports=1, poll_interval=1.0, poll_max_interval=10.0, export_timeout=3600.0)
    options.update(kwargs)
    orch = ExportOrchestrator(
        providers,
        workdir=tmp_path / "work",
        downloader=AccountsDownloader(providers),
        **clock.engine_options(),
        **options,
    )
    clock.board = orch.board
    return orch


def finished_at(jobs) -> float:
    """Virtual time the last export was seen DONE (the clock itself runs on while the
    consumer reads: the engine's idle waits jump it)."""
    return max(j.download_started_at for j in jobs)


def one_window_each(names, *streams, days: int = 8) -> list[ExportJob]:
    window = Window(T0, T0 + timedelta(days=days))
    return [ExportJob(stream, window, 0, account=name) for name in names for stream in streams]


# ------------------------------------------------------------------ a shared capacity
def test_a_server_running_four_exports_for_the_whole_app_is_kept_full_within_twice_the_ideal(tmp_path):
    clock = IdleJumpClock()
    server = Server(clock, cap=4, delay=2.0)
    providers = accounts(server, 40)
    jobs = one_window_each(providers, ORDERS, CUSTOMERS)
    orch = engine(providers, tmp_path, clock)
    states = [j.state for j in orch.run(jobs)]
    assert states == [JobState.READY] * 80
    ideal = math.ceil(80 / 4) * server.delay
    took = finished_at(jobs)
    assert took <= 2 * ideal, f"{took:.1f} virtual seconds for an ideal of {ideal:.0f}"
    assert server.refused <= 80, "at most one refused create per export on average"
    assert server.created == 80
    assert orch.capacity.shared.limit in (4, 5), "the limit it learned is what the server takes"


def test_a_freed_place_goes_to_the_next_waiting_create_without_any_accounts_back_off(tmp_path):
    clock = IdleJumpClock()
    server = Server(clock, cap=2, delay=5.0)
    providers = accounts(server, 6)
    orch = engine(providers, tmp_path, clock, poll_interval=5.0)
    jobs = one_window_each(providers, ORDERS)
    assert all(j.state is JobState.READY for j in orch.run(jobs))
    # 6 exports, 2 at a time, 5 s each: three rounds; no account waited on a doubling clock
    assert finished_at(jobs) <= 3 * 5.0 + 1.0
    assert max(lane.refusals.blocked_until for lane in orch.board.lanes.values()) == 0.0


def test_every_account_moves_while_the_capacity_is_shared(tmp_path):
    clock = IdleJumpClock()
    server = Server(clock, cap=3, delay=2.0)
    providers = accounts(server, 9)
    jobs = [
        ExportJob(ORDERS, w, seq, account=name)
        for name in providers
        for seq, w in enumerate(plan_windows(T0, T0 + timedelta(days=3), timedelta(days=1)))
    ]
    orch = engine(providers, tmp_path, clock)
    created_first_windows_by = []
    for job in orch.run(jobs):
        assert job.state is JobState.READY
        if job.seq == 0:
            created_first_windows_by.append(job.created_at)
    # oldest windows first across the accounts: every account's first window was created
    # before any account's third
    third = min(j.created_at for j in jobs if j.seq == 2 and j.created_at is not None)
    assert max(created_first_windows_by) < third


def test_a_refusal_while_the_account_runs_exports_of_its_own_keeps_its_own_clock(tmp_path):
    clock = IdleJumpClock()
    server = Server(clock, cap=None, delay=2.0)
    (name, provider), *_ = accounts(server, 1).items()
    refusals = [ExportsBusy(None, "busy")]
    real_create = provider.create_export

    def create_export(export_type, window):
        if provider.index(window) == 1 and refusals:
            raise refusals.pop()
        return real_create(export_type, window)

    provider.create_export = create_export
    jobs = [
        ExportJob(ORDERS, w, seq, account=name)
        for seq, w in enumerate(plan_windows(T0, T0 + timedelta(days=2), timedelta(days=1)))
    ]
    orch = engine({name: provider}, tmp_path, clock, max_concurrent_exports=2)
    assert [j.state for j in orch.run(jobs)] == [JobState.READY] * 2
    assert orch.capacity.shared.limit is None, "one account's own limit is not taken as the app's"


# ------------------------------------------------------------------ learning the span
def failing_above_eight_days(tmp_path, **options) -> tuple[Server, str, ExportOrchestrator]:
    """One account whose exports fail above 8 days; the engine splits down to 1 day."""
    clock = IdleJumpClock()
    server = Server(clock, delay=0.5, fail_above=timedelta(days=8))
    providers = accounts(server, 1)
    (name,) = providers
    orch = engine(
        providers,
        tmp_path,
        clock,
        max_concurrent_exports=4,
        poll_interval=0.5,
        min_split_span=timedelta(days=1),
        **options,
    )
    return server, name, orch


def test_exports_failing_above_eight_days_cost_at_most_forty_creates_over_two_streams_and_two_months(
    tmp_path,
):
    server, name, orch = failing_above_eight_days(tmp_path)
    jobs = [
        ExportJob(stream, w, seq, account=name)
        for stream in (ORDERS, CUSTOMERS)
        for seq, w in enumerate(plan_windows(T0, T0 + timedelta(days=59), timedelta(days=30)))
    ]
    delivered = [j for j in orch.run(jobs) if j.state is JobState.READY]
    assert server.failing, "exports above 8 days failed"
    for stream in (ORDERS, CUSTOMERS):
        windows = [j.window for j in delivered if j.stream is stream]
        assert windows[0].start == T0 and windows[-1].end == T0 + timedelta(days=59)
        assert all(a.end == b.start for a, b in zip(windows, windows[1:], strict=False)), "no gap, no overlap"
        assert all(w.end - w.start <= timedelta(days=8) for w in windows)
    assert server.created <= 40, f"{server.created} creates"
    learned = orch.learned_spans()
    assert set(learned) == {("orders", name), ("customers", name)}
    assert all(timedelta(days=4) <= span <= timedelta(days=8) for span in learned.values())


def test_a_span_learned_by_the_last_run_cuts_windows_before_any_export_fails(tmp_path):
    server, name, orch = failing_above_eight_days(
        tmp_path,
        learned_spans={("orders", "m0"): timedelta(days=7, hours=12)},
        planned_span=timedelta(days=30),
    )
    jobs = [ExportJob(ORDERS, Window(T0, T0 + timedelta(days=30)), 0, account=name)]
    delivered = list(orch.run(jobs))
    assert [j.window.end - j.window.start for j in delivered] == [timedelta(days=7, hours=12)] * 4
    assert server.created == 4 and not server.failing


def test_with_requests_on_several_workers_every_refused_create_is_made_later(tmp_path):
    """Real time (the requests run on a pool): a create refused while other creates of
    its account's lane were looked at still gets made; every window is delivered."""
    import time

    server = Server(time.monotonic, cap=2, delay=0.05)  # type: ignore[arg-type]
    providers = accounts(server, 10)
    jobs = one_window_each(providers, ORDERS, CUSTOMERS)
    orch = ExportOrchestrator(
        providers,
        workdir=tmp_path / "work",
        downloader=AccountsDownloader(providers),
        max_concurrent_exports=1,
        poll_interval=0.02,
        poll_max_interval=0.05,
        export_timeout=60.0,
        request_workers=4,
    )
    states = [j.state for j in orch.run(jobs)]
    assert states == [JobState.READY] * 20
    assert server.created == 20 and server.refused >= 1
