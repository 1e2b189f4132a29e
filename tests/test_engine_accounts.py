"""The engine runs the jobs of several accounts at once, each on its own provider.

Two scripted fake providers (the engine's own fake, named by account, sharing one count
of exports alive) and a downloader that serves both. What each account keeps to itself:
its places in flight, its refused creates, its failure; what spans them: the global cap.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tap_commerce_exports.errors import AuthError, ExportFailed
from tap_commerce_exports.http.download import FileDownloader
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.jobs.orchestrator import ExportOrchestrator
from tap_commerce_exports.providers.base import ExportPhase, ExportsBusy, ExportStatus
from tap_commerce_exports.windows import Window
from tests.engine_clock import JumpClock
from tests.engine_fakes import CUSTOMERS, ORDERS, T0, ScriptedProvider, jobs_for

PENDING_TWICE = ["pending", "pending", "available"]


class Alive:
    """Exports created and not yet downloaded, across all accounts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.peak = 0
        self.created: list[tuple[str, int]] = []  # (account, window index), in creation order

    def up(self) -> None:
        with self.lock:
            self.count += 1
            self.peak = max(self.peak, self.count)

    def down(self) -> None:
        with self.lock:
            self.count -= 1


class AccountFake(ScriptedProvider):
    """The engine's fake provider as one account; its file URLs name the account."""

    def __init__(self, name: str, alive: Alive, statuses=None, **kwargs) -> None:
        super().__init__(statuses, **kwargs)
        self.name = name
        self.alive = alive
        self.done_at_once = False  # exports are DONE as soon as they are created

    @property
    def account(self) -> str:
        return self.name

    def create_export(self, export_type, window):
        status = super().create_export(export_type, window)
        self.alive.up()
        with self.alive.lock:
            self.alive.created.append((self.name, self.index(window)))
        if self.done_at_once:
            return ExportStatus(status.export_id, ExportPhase.DONE, "available")
        return status

    def file_urls(self, status, *, refresh=False):
        return [
            url.replace("fake://", f"fake://{self.name}/")
            for url in super().file_urls(status, refresh=refresh)
        ]


class AccountsDownloader(FileDownloader):
    """Writes the URL as the file; marks the export downloaded on its account's fake."""

    def __init__(self, providers: dict[str, AccountFake]) -> None:
        super().__init__()
        self.providers = providers

    def download(self, url: str, dest: Path, budget=None) -> int:
        account, export_id = url.split("/")[2:4]
        provider = self.providers[account]
        with provider.lock:
            if export_id in provider.live:
                provider.live.discard(export_id)
                provider.alive.down()
        dest.write_bytes(url.encode())
        return len(url)


def two_accounts(statuses_a=None, statuses_b=None, **kwargs) -> tuple[AccountFake, AccountFake]:
    alive = Alive()
    return AccountFake("a", alive, statuses_a, **kwargs), AccountFake("b", alive, statuses_b)


def engine(
    providers: dict[str, AccountFake], tmp_path, real_time: bool = False, **kwargs
) -> ExportOrchestrator:
    """On virtual time unless the spec gives its clock or needs real time (see ``make``)."""
    options = dict(max_concurrent_exports=4, poll_interval=0.005, poll_max_interval=0.02, export_timeout=10.0)
    if not real_time and not {"clock", "wait"} & kwargs.keys():
        options.update(JumpClock().engine_options())
    options.update(kwargs)
    return ExportOrchestrator(
        providers, workdir=tmp_path / "work", downloader=AccountsDownloader(providers), **options
    )


def of(account: str, *streams_and_counts) -> list[ExportJob]:
    jobs = jobs_for(*streams_and_counts)
    for job in jobs:
        job.account = account
    return jobs


def run(orch, jobs, **kwargs) -> list[tuple[str, str, int, JobState, BaseException | None]]:
    return [(j.account, j.stream.name, j.seq, j.state, j.error) for j in orch.run(jobs, **kwargs)]


# ------------------------------------------------------------------ places
def test_max_concurrent_exports_is_a_limit_per_account(tmp_path):
    statuses = {(t, i): PENDING_TWICE for t in ("order_list", "customer_list") for i in range(4)}
    a, b = two_accounts(statuses, statuses)
    orch = engine({"a": a, "b": b}, tmp_path, max_concurrent_exports=2)
    seen = run(orch, of("a", (ORDERS, 4), (CUSTOMERS, 4)) + of("b", (ORDERS, 4), (CUSTOMERS, 4)))
    assert len(seen) == 16 and all(state is JobState.READY for *_, state, _ in seen)
    assert (a.peak_live, b.peak_live) == (2, 2)
    assert a.alive.peak == 4  # each account had its own two places


def test_max_concurrent_total_caps_the_exports_in_flight_of_all_accounts(tmp_path):
    statuses = {(t, i): PENDING_TWICE for t in ("order_list", "customer_list") for i in range(4)}
    a, b = two_accounts(statuses, statuses)
    orch = engine({"a": a, "b": b}, tmp_path, max_concurrent_exports=2, max_concurrent_total=3)
    seen = run(orch, of("a", (ORDERS, 4), (CUSTOMERS, 4)) + of("b", (ORDERS, 4), (CUSTOMERS, 4)))
    assert len(seen) == 16 and all(state is JobState.READY for *_, state, _ in seen)
    assert a.alive.peak == 3
    assert a.peak_live <= 2 and b.peak_live <= 2


def test_windows_are_created_oldest_first_across_accounts(tmp_path):
    a, b = two_accounts()
    orch = engine({"a": a, "b": b}, tmp_path, max_concurrent_exports=1, max_concurrent_total=1)
    run(orch, of("a", (ORDERS, 2)) + of("b", (ORDERS, 2)))
    # one place for both: window 0 of each account before window 1 of either
    assert a.alive.created == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


# ------------------------------------------------------------------ order and failures
def test_jobs_come_in_window_order_per_stream_and_account(tmp_path):
    a, b = two_accounts({("order_list", 0): PENDING_TWICE * 2}, {("order_list", 2): ["available"]})
    orch = engine({"a": a, "b": b}, tmp_path)
    seen = run(orch, of("a", (ORDERS, 3), (CUSTOMERS, 2)) + of("b", (ORDERS, 3), (CUSTOMERS, 2)))
    for account in "ab":
        for stream, count in (("orders", 3), ("customers", 2)):
            assert [q for acc, s, q, *_ in seen if (acc, s) == (account, stream)] == list(range(count))


def test_a_failed_window_cancels_the_later_windows_of_its_own_account_only(tmp_path):
    a, b = two_accounts({("order_list", 1): ["pending", "error"]})
    orch = engine({"a": a, "b": b}, tmp_path, export_attempts=1, max_concurrent_exports=1)
    jobs_a, jobs_b = of("a", (ORDERS, 4)), of("b", (ORDERS, 4))
    seen = run(orch, jobs_a + jobs_b)
    assert [(q, st) for acc, _, q, st, _ in seen if acc == "a"] == [(0, JobState.READY), (1, JobState.FAILED)]
    assert [(q, st) for acc, _, q, st, _ in seen if acc == "b"] == [(q, JobState.READY) for q in range(4)]
    assert all(j.state is JobState.CANCELLED for j in jobs_a[2:])
    assert not jobs_a[1].account_failed and isinstance(jobs_a[1].error, ExportFailed)


def test_an_auth_error_of_one_account_fails_only_its_jobs_while_the_others_finish(tmp_path):
    a, b = two_accounts(create_errors={("order_list", 1): [AuthError("check accounts[0].access_token")]})
    orch = engine({"a": a, "b": b}, tmp_path, max_concurrent_exports=1)
    jobs_a, jobs_b = of("a", (ORDERS, 3), (CUSTOMERS, 2)), of("b", (ORDERS, 3), (CUSTOMERS, 2))
    seen = run(orch, jobs_a + jobs_b)
    # b: everything synced
    assert sorted((s, q) for acc, s, q, st, _ in seen if acc == "b" and st is JobState.READY) == sorted(
        (j.stream.name, j.seq) for j in jobs_b
    )
    assert len(b.created) == 5
    # a: what was ready before the refusal is emitted; every job not done failed with
    # the account's error, and is yielded, in its pair's order
    failed_a = [(s, q) for acc, s, q, st, _ in seen if acc == "a" and st is JobState.FAILED]
    assert failed_a and all(
        j.account_failed and "accounts[0].access_token" in str(j.error)
        for j in jobs_a
        if j.state is JobState.FAILED
    )
    assert sorted(failed_a) == sorted((j.stream.name, j.seq) for j in jobs_a if j.state is JobState.FAILED)
    assert not any(j.state in (JobState.QUEUED, JobState.WAITING, JobState.CREATING) for j in jobs_a)
    for stream in ("orders", "customers"):
        seqs = [q for acc, s, q, *_ in seen if (acc, s) == ("a", stream)]
        assert seqs == sorted(seqs)
    assert all(is_account_failure(j.error) for j in jobs_a if j.state is JobState.FAILED)


def test_an_account_that_failed_keeps_its_exports_in_flight_for_the_next_run(tmp_path):
    a, b = two_accounts({("order_list", 0): ["pending"] * 1000})
    fail_polls = threading.Event()
    real_get = a.get_export

    def get_export(export_id):
        if fail_polls.is_set():
            raise AuthError("check accounts[0].access_token")
        return real_get(export_id)

    a.get_export = get_export  # type: ignore[method-assign]
    orch = engine({"a": a, "b": b}, tmp_path, real_time=True)
    kept: list[tuple[str, str | None]] = []
    jobs = of("a", (ORDERS, 1)) + of("b", (ORDERS, 1))
    for job in orch.run(jobs):
        if job.account == "b":
            fail_polls.set()  # a's token is revoked while its export is pending
        else:
            kept = [(j.account, j.export_id) for j in orch.exports_in_flight()]
    assert jobs[0].account_failed
    assert kept == [("a", "1000")]


# ------------------------------------------------------------------ refused creates (503)
class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_create_of_one_account_does_not_hold_back_the_others(tmp_path):
    a, b = two_accounts(create_errors={("order_list", 0): [ExportsBusy(60.0, "too many exports running")]})
    a.done_at_once = b.done_at_once = True  # no status checks: only creates wait on the clock
    clock = ManualClock()
    orch = engine({"a": a, "b": b}, tmp_path, clock=clock, export_timeout=1e6)
    order: list[tuple[str, int, JobState]] = []
    for job in orch.run(of("a", (ORDERS, 2)) + of("b", (ORDERS, 3))):
        order.append((job.account, job.seq, job.state))
        if [acc for acc, *_ in order].count("b") == 3:
            clock.now += 61.0  # only now does a's refusal run out
    assert order[:3] == [("b", 0, JobState.READY), ("b", 1, JobState.READY), ("b", 2, JobState.READY)]
    assert order[3:] == [("a", 0, JobState.READY), ("a", 1, JobState.READY)]
    assert a.created == [("order_list", 0), ("order_list", 1)]


def test_refusals_past_export_timeout_fail_only_that_accounts_streams(tmp_path):
    a, b = two_accounts(create_errors={("order_list", 0): [ExportsBusy(None, "busy")] * 1000})
    orch = engine({"a": a, "b": b}, tmp_path, poll_interval=5, export_timeout=50)
    seen = run(orch, of("a", (ORDERS, 2)) + of("b", (ORDERS, 2)))
    assert [(acc, q, st) for acc, _, q, st, _ in seen if acc == "a"] == [("a", 0, JobState.FAILED)]
    assert [(q, st) for acc, _, q, st, _ in seen if acc == "b"] == [(0, JobState.READY), (1, JobState.READY)]


# ------------------------------------------------------------------ webhooks
def test_wake_names_the_account_whose_export_is_ready(tmp_path):
    # both accounts number their exports alike: export 1000 exists in each
    a, b = two_accounts({("order_list", 0): ["available"]}, {("order_list", 0): ["available"]})
    orch = engine(
        {"a": a, "b": b},
        tmp_path,
        real_time=True,
        poll_interval=30,
        poll_max_interval=60,
        webhook_active=True,
    )
    jobs = of("a", (ORDERS, 1)) + of("b", (ORDERS, 1))
    # not created yet: kept for when it is (tests/test_early_wakes.py); another store's
    # here, so the wake below is the one that has b's export checked
    assert orch.wake("1000", account="c") is False
    woken: list[str] = []

    def exports_saved() -> None:  # the consumer's thread, once exports exist
        if not woken and len(orch.exports_in_flight()) == 2:
            assert orch.wake("1000", account="c") is False
            assert orch.wake("1000", account="b")
            woken.append("b")

    seen: list[str] = []
    for job in orch.run(jobs, on_exports=exports_saved):
        seen.append(job.account)
        if len(seen) == 1:
            assert (a.checks["1000"], b.checks["1000"]) == (0, 1)  # not the 30 s poll
            assert orch.wake("1000", account="A")  # the store as the webhook spells it
    assert seen == ["b", "a"]


def test_wake_without_an_account_wakes_the_export_of_any_account(tmp_path):
    provider = AccountFake("solo", Alive(), {("order_list", 0): ["available"]})
    orch = ExportOrchestrator(
        provider,
        workdir=tmp_path / "work",
        downloader=AccountsDownloader({"solo": provider}),
        max_concurrent_exports=1,
        poll_interval=30,
        poll_max_interval=60,
        export_timeout=10,
        webhook_active=True,
    )
    jobs = jobs_for((ORDERS, 1))  # no account: the engine's only provider

    def woken() -> None:
        if orch.exports_in_flight():
            assert orch.wake("1000", account="solo")  # its provider's account name
            assert orch.wake("1000")

    assert [j.state for j in orch.run(jobs, on_exports=woken)] == [JobState.READY]
    assert provider.checks["1000"] == 1


# ------------------------------------------------------------------ the interface
def test_a_job_of_an_account_the_engine_has_no_provider_for_is_refused(tmp_path):
    a, b = two_accounts()
    orch = engine({"a": a, "b": b}, tmp_path)
    job = ExportJob(ORDERS, jobs_for((ORDERS, 1))[0].window, 0, account="zz")
    try:
        next(orch.run([job]))
    except ValueError as exc:
        assert "account 'zz'" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an unknown account was accepted")
    finally:
        orch.stop()


def test_a_jobs_label_names_its_account_when_it_has_one():
    (job,) = jobs_for((ORDERS, 1))
    assert job.label == f"orders {job.window}"
    job.account = "m2"
    assert job.label == f"orders of 'm2' {job.window}"
    assert job.pair == ("orders", "m2")


def test_a_window_split_after_failing_keeps_its_account_and_its_halves_come_in_its_order(tmp_path):
    a, b = two_accounts()
    scripts = {"b": b}
    real_create = b.create_export

    def create_export(export_type, window):  # b's exports over more than a day fail
        status = real_create(export_type, window)
        if window.end - window.start > timedelta(days=1):
            scripts["b"].scripts[status.export_id] = ["pending", "error"]
        return status

    b.create_export = create_export  # type: ignore[method-assign]
    two_days = [ExportJob(ORDERS, Window(T0, T0 + timedelta(days=2)), 0, account=acc) for acc in "ab"]
    orch = engine({"a": a, "b": b}, tmp_path, export_attempts=1, min_split_span=timedelta(days=1))
    seen = [(j.account, j.window, j.state) for j in orch.run(two_days)]
    day = timedelta(days=1)
    assert [s for s in seen if s[0] == "a"] == [("a", two_days[0].window, JobState.READY)]
    assert [s for s in seen if s[0] == "b"] == [
        ("b", Window(T0, T0 + day), JobState.READY),
        ("b", Window(T0 + day, T0 + 2 * day), JobState.READY),
    ]
    assert two_days[1].state is JobState.SPLIT and all(p.account == "b" for p in two_days[1].parts or ())


# ------------------------------------------------------------------ races
class HeldDownloader(AccountsDownloader):
    """Holds the first download until ``release`` is set; says when it is held."""

    def __init__(self, providers: dict[str, AccountFake]) -> None:
        super().__init__(providers)
        self.held = threading.Event()
        self.release = threading.Event()

    def download(self, url: str, dest: Path, budget=None) -> int:
        if not self.held.is_set():
            self.held.set()
            assert self.release.wait(10)
        return super().download(url, dest, budget)


@pytest.mark.race
def test_a_download_that_ends_after_its_account_failed_leaves_the_job_failed(tmp_path):
    # window 0 of account a is downloading when window 1's create finds a's token revoked:
    # the account fails (window 0 with it) while the download is still running; when the
    # download then ends, it must not make the failed job READY again
    a, b = two_accounts()
    a.done_at_once = True
    downloader = HeldDownloader({"a": a, "b": b})
    real_create = a.create_export

    def create_export(export_type, window):
        if a.index(window) == 1:
            assert downloader.held.wait(10)  # window 0's download is in flight
            raise AuthError("check accounts[0].access_token")
        return real_create(export_type, window)

    a.create_export = create_export  # type: ignore[method-assign]
    orch = ExportOrchestrator(
        {"a": a},
        workdir=tmp_path / "work",
        downloader=downloader,
        max_concurrent_exports=2,
        poll_interval=0.005,
        poll_max_interval=0.02,
        export_timeout=10.0,
    )
    jobs = of("a", (ORDERS, 2))
    run = orch.run(jobs)
    first = next(run)
    assert (first.seq, first.state, first.account_failed) == (0, JobState.FAILED, True)
    downloader.release.set()  # the download ends after its account failed
    rest = list(run)
    assert [(j.seq, j.state) for j in rest] == [(1, JobState.FAILED)]
    assert [j.state for j in jobs] == [JobState.FAILED, JobState.FAILED]
