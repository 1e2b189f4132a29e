"""The engine's races, each reproduced deterministically: events hold a request in
flight while another thread moves its job, and the engine thread's own waits say when
it has settled (no sleeps)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tap_commerce_exports.http.download import DownloadError
from tap_commerce_exports.jobs import orchestrator
from tap_commerce_exports.jobs.job import ExportJob, IllegalTransition, JobState
from tap_commerce_exports.providers.base import ExportPhase, ExportStatus
from tests.engine_fakes import CUSTOMERS, ORDERS, ScriptedDownloader, ScriptedProvider, jobs_for, make

pytestmark = pytest.mark.race

BARRIER = 30.0  # seconds an event may take before the test calls the engine stuck (a hang bound only)


class EngineSettled:
    """Set once the engine thread sleeps for a second or more after :meth:`arm` (or is
    in such a sleep when armed): it has nothing left to do. A spinning engine only ever
    waits 0 s. Given to the engine as its idle wait (``wait=``)."""

    def __init__(self) -> None:
        self.armed = False
        self.sleeping = False
        self.event = threading.Event()

    def __call__(self, condition: threading.Condition, timeout: float) -> object:
        if timeout >= 1.0:
            self.sleeping = True  # under the engine's lock, as arm() reads it
            if self.armed:
                self.event.set()
        try:
            return condition.wait(timeout)
        finally:
            self.sleeping = False

    def arm(self, condition: threading.Condition | None = None) -> None:
        """Arm; with the engine's ``condition``, read its sleep under its lock."""
        if condition is None:
            self.armed = True
            return
        with condition:
            self.armed = True
            if self.sleeping:
                self.event.set()

    def wait(self) -> bool:
        return self.event.wait(BARRIER)


def on_abandon(orch) -> threading.Event:
    """An event set once the engine has cancelled the later windows of a failed one."""
    abandoned = threading.Event()
    board = orch.board
    real = board.abandon_after

    def abandon_after(job):
        real(job)
        abandoned.set()

    board.abandon_after = abandon_after
    return abandoned


class DoneAtOnce(ScriptedProvider):
    """orders window 0 is already DONE when created, so its download starts at once."""

    def create_export(self, export_type, window):
        status = super().create_export(export_type, window)
        if (export_type, self.index(window)) == ("order_list", 0):
            return ExportStatus(status.export_id, ExportPhase.DONE, "available")
        return status


class FailsWhen(ScriptedDownloader):
    """The download of export ``1000`` (orders window 0) fails once ``go`` is set."""

    def __init__(self, provider, go: threading.Event) -> None:
        super().__init__(provider)
        self.go = go

    def download(self, url: str, dest: Path, budget=None) -> int:
        if url.startswith("fake://1000/"):
            assert self.go.wait(BARRIER)
            raise RuntimeError("connection reset")
        return super().download(url, dest, budget)


# ------------------------------------------------------------------ webhook during a check
def test_a_webhook_during_its_exports_status_check_does_not_keep_the_engine_thread_awake(tmp_path):
    provider = ScriptedProvider({("order_list", 0): ["available"], ("customer_list", 0): ["pending"]})
    in_check, release = threading.Event(), threading.Event()
    real_get = provider.get_export

    def get_export(export_id):
        if provider.by_id[export_id] == ("order_list", 0) and not in_check.is_set():
            in_check.set()
            assert release.wait(BARRIER)
        return real_get(export_id)

    provider.get_export = get_export
    settled = EngineSettled()
    orch = make(
        provider,
        tmp_path,
        poll_interval=30,
        poll_max_interval=60,
        webhook_active=True,
        export_timeout=1e6,
        wait=settled,
    )
    seen: list = []
    consumer = threading.Thread(
        target=lambda: seen.extend(
            (j.stream.name, j.state) for j in orch.run(jobs_for((ORDERS, 1), (CUSTOMERS, 1)))
        ),
        daemon=True,
    )
    created = Created(provider, ("order_list", 0), ("customer_list", 0))
    consumer.start()
    orders_id, customers_id = created.ids()
    assert orch.wake(orders_id)  # the webhook: check now
    assert in_check.wait(BARRIER)
    assert orch.wake(orders_id)  # the webhook again (a retried delivery) while the check is in flight
    settled.arm(orch.board.cv)
    release.set()
    assert settled.wait(), "the engine thread spins after the check (a wake-up outlived its wait)"
    provider.scripts[customers_id] = ["available"]
    assert orch.wake(customers_id)
    consumer.join(BARRIER)
    assert sorted(seen) == [("customers", JobState.READY), ("orders", JobState.READY)]
    assert provider.checks[orders_id] == 1


def test_a_webhook_during_a_check_that_still_says_pending_gets_one_more_check_at_once(tmp_path):
    provider = ScriptedProvider({("order_list", 0): ["pending", "available"]})
    in_check, release = threading.Event(), threading.Event()
    real_get = provider.get_export

    def get_export(export_id):
        if not in_check.is_set():
            in_check.set()
            assert release.wait(BARRIER)
        return real_get(export_id)

    provider.get_export = get_export
    orch = make(
        provider, tmp_path, poll_interval=30, poll_max_interval=60, webhook_active=True, export_timeout=1e6
    )
    seen: list = []
    consumer = threading.Thread(
        target=lambda: seen.extend(j.state for j in orch.run(jobs_for((ORDERS, 1)))), daemon=True
    )
    created = Created(provider, ("order_list", 0))
    consumer.start()
    (orders_id,) = created.ids()
    assert orch.wake(orders_id)
    assert in_check.wait(BARRIER)
    assert orch.wake(orders_id)  # the export became ready while the check was answered "pending"
    release.set()
    consumer.join(BARRIER)  # not the 60 s poll interval
    assert seen == [JobState.READY]
    assert provider.checks[orders_id] == 2


# ------------------------------------------------------------------ cancelled while in flight
def test_a_window_cancelled_while_its_create_is_in_flight_stays_cancelled(tmp_path):
    # orders window 0's download fails (its stream stops there) while window 1's create
    # is in flight: window 1 must not become WAITING when its create answers
    provider = DoneAtOnce()
    in_create = threading.Event()
    settled = EngineSettled()
    orch = make(
        provider, tmp_path, max_concurrent_exports=2, downloader=FailsWhen(provider, in_create), wait=settled
    )
    abandoned = on_abandon(orch)
    real_create = provider.create_export

    def create_export(export_type, window):
        if (export_type, provider.index(window)) == ("order_list", 1):
            in_create.set()
            assert abandoned.wait(BARRIER)
        return real_create(export_type, window)

    provider.create_export = create_export
    jobs = jobs_for((ORDERS, 2))
    run = orch.run(jobs)
    first = next(run)
    assert (first.seq, first.state) == (0, JobState.FAILED)
    settled.arm(orch.board.cv)
    assert settled.wait()
    later = jobs[1]
    assert later.state is JobState.CANCELLED
    assert later.created_at is None, "the cancelled window was taken up again"
    assert provider.checks[provider.export_id_of("order_list", 1)] == 0
    run.close()


def test_a_window_cancelled_while_its_status_check_is_in_flight_is_not_downloaded(tmp_path):
    provider = DoneAtOnce()
    in_check = threading.Event()
    settled = EngineSettled()
    orch = make(
        provider, tmp_path, max_concurrent_exports=2, downloader=FailsWhen(provider, in_check), wait=settled
    )
    abandoned = on_abandon(orch)
    real_get = provider.get_export

    def get_export(export_id):
        if provider.by_id[export_id] == ("order_list", 1):
            in_check.set()
            assert abandoned.wait(BARRIER)
            return ExportStatus(export_id, ExportPhase.DONE, "available")
        return real_get(export_id)

    provider.get_export = get_export
    jobs = jobs_for((ORDERS, 2))
    run = orch.run(jobs)
    first = next(run)
    assert (first.seq, first.state) == (0, JobState.FAILED)
    settled.arm(orch.board.cv)
    assert settled.wait()
    later = jobs[1]
    assert later.state is JobState.CANCELLED
    assert later.download_started_at is None, "the cancelled window was downloaded"
    run.close()


def test_a_job_the_consumer_fails_stops_its_stream_there(tmp_path):
    # whichever thread sees the stop first (stress: make stress), the later windows end
    # CANCELLED: a download in flight at the stop is cut or finishes, never FAILED or READY
    provider = ScriptedProvider()
    orch = make(provider, tmp_path, max_concurrent_exports=1)
    jobs = jobs_for((ORDERS, 3))
    seen = []
    for job in orch.run(jobs):
        seen.append((job.seq, job.state))
        if job.seq == 0:
            orch.fail(job, ValueError("a bad file"))
    assert seen == [(0, JobState.READY)]
    assert jobs[0].state is JobState.FAILED and str(jobs[0].error) == "a bad file"
    assert settled(orch, jobs)
    assert all(j.state is JobState.CANCELLED for j in jobs[1:])


class HeldAtStop(ScriptedDownloader):
    """Holds window 1's download (says when) until the sync stopped, then ends it as
    ``ending`` says: "cut" (an error, as the real downloader's cancel gives) or
    "finished" (its file written)."""

    def __init__(self, provider, ending: str) -> None:
        super().__init__(provider)
        self.ending = ending
        self.in_flight = threading.Event()
        self.stopped = threading.Event()

    def download(self, url: str, dest: Path, budget=None) -> int:
        if url.startswith("fake://1001/"):
            self.in_flight.set()
            assert self.stopped.wait(BARRIER)
            if self.ending == "cut":
                raise DownloadError("connection closed: the download was cancelled")
        return super().download(url, dest, budget)


@pytest.mark.parametrize("ending", ["cut", "finished"])
def test_a_download_that_ends_after_its_stream_and_the_sync_stopped_ends_cancelled(tmp_path, ending):
    provider = ScriptedProvider()
    downloader = HeldAtStop(provider, ending)
    orch = make(provider, tmp_path, max_concurrent_exports=1, downloader=downloader)
    jobs = jobs_for((ORDERS, 3))
    run = orch.run(jobs)
    first = next(run)
    assert downloader.in_flight.wait(BARRIER)  # window 1 is downloading
    orch.fail(first, ValueError("a bad file"))
    assert list(run) == []  # the stream stops at window 0, and the sync with it
    assert orch.board.stopped
    downloader.stopped.set()  # only now does the download end
    assert settled(orch, jobs)
    assert [j.state for j in jobs] == [JobState.FAILED, JobState.CANCELLED, JobState.CANCELLED]
    assert jobs[1].error is None and jobs[1].files == []


def test_a_download_still_queued_when_the_sync_stops_ends_cancelled(tmp_path, monkeypatch):
    # one download worker: window 1's download holds it, window 2's waits in the queue;
    # the stop drops the queued one, which must not leave its job DOWNLOADING for good
    monkeypatch.setattr(orchestrator, "MAX_DOWNLOAD_WORKERS", 1)
    provider = ScriptedProvider({("order_list", i): ["available"] for i in range(3)})
    downloader = HeldAtStop(provider, "finished")
    orch = make(provider, tmp_path, max_concurrent_exports=3, downloader=downloader)
    jobs = jobs_for((ORDERS, 3))
    run = orch.run(jobs)
    first = next(run)
    assert downloader.in_flight.wait(BARRIER)
    with orch.board.cv:  # window 2 is DOWNLOADING: its download queued behind window 1's
        assert orch.board.cv.wait_for(lambda: jobs[2].state is JobState.DOWNLOADING, BARRIER)
    orch.fail(first, ValueError("a bad file"))
    assert list(run) == []
    downloader.stopped.set()
    assert settled(orch, jobs)
    assert [j.state for j in jobs] == [JobState.FAILED, JobState.CANCELLED, JobState.CANCELLED]


def settled(orch, jobs) -> bool:
    """Waits (bounded) until no job of ``jobs`` is downloading any more."""
    with orch.board.cv:
        return orch.board.cv.wait_for(lambda: not any(j.state is JobState.DOWNLOADING for j in jobs), BARRIER)


def test_a_consumed_job_has_a_state_of_its_own(tmp_path):
    orch = make(ScriptedProvider(), tmp_path)
    jobs = jobs_for((ORDERS, 2))
    for _ in orch.run(jobs):
        pass
    assert [j.state for j in jobs] == [JobState.CONSUMED, JobState.CONSUMED]


# ------------------------------------------------------------------ the transition table
def test_a_move_the_jobs_life_does_not_have_raises():
    (job,) = jobs_for((ORDERS, 1))
    with pytest.raises(IllegalTransition, match="queued to ready"):
        job.move(JobState.QUEUED, JobState.READY)
    job.move(JobState.QUEUED, JobState.CANCELLED)
    with pytest.raises(IllegalTransition, match="cancelled to waiting"):
        job.move(JobState.CANCELLED, JobState.WAITING)  # a final state is final


def test_a_move_from_a_state_the_job_is_no_longer_in_raises():
    (job,) = jobs_for((ORDERS, 1))
    job.move(JobState.QUEUED, JobState.CREATING)
    job.move(JobState.CREATING, JobState.CANCELLED)  # e.g. stop() while the create was in flight
    with pytest.raises(IllegalTransition, match="expected creating"):
        job.move(JobState.CREATING, JobState.WAITING)


def test_the_state_of_a_job_is_changed_only_through_move():
    (job,) = jobs_for((ORDERS, 1))
    with pytest.raises(AttributeError):
        job.state = JobState.READY  # type: ignore[misc]
    assert isinstance(job, ExportJob) and job.state is JobState.QUEUED


class Created:
    """Install before the engine starts; :meth:`ids` waits until all ``keys`` are created."""

    def __init__(self, provider: ScriptedProvider, *keys) -> None:
        self.provider, self.keys = provider, keys
        self.done = threading.Event()
        real = provider.create_export

        def create_export(export_type, window):
            status = real(export_type, window)
            with provider.lock:
                if all(k in provider.created for k in keys):
                    self.done.set()
            return status

        provider.create_export = create_export

    def ids(self) -> list[str]:
        assert self.done.wait(BARRIER)
        return [self.provider.export_id_of(*k) for k in self.keys]


def test_every_edge_of_a_jobs_life_has_the_one_method_that_makes_it():
    from tap_commerce_exports.jobs.job import EDGE_METHODS, TRANSITIONS, ExportJob

    edges = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert edges == set(EDGE_METHODS), "an edge without its method, or a method's edge the table lacks"
    assert all(callable(getattr(ExportJob, name, None)) for name in EDGE_METHODS.values())
