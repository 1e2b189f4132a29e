"""The export-job engine, driven through a scripted fake provider and a fake downloader."""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import datetime, timedelta

from tap_commerce_exports.errors import AuthError, ExportFailed, UserError
from tap_commerce_exports.http.download import TruncatedDownload, UrlExpired
from tap_commerce_exports.jobs.job import JobState
from tap_commerce_exports.providers.base import (
    Availability,
    ExportsBusy,
)
from tests.engine_clock import JumpClock
from tests.engine_fakes import (
    CUSTOMERS,
    ORDERS,
    REFUNDS,
    UTC,
    ScriptedDownloader,
    ScriptedProvider,
    consume,
    fast_retries,  # noqa: F401 - autouse: pauses between retries take no real time
    jobs_for,
    make,
)


# ------------------------------------------------------------------ order and limits
def test_jobs_of_several_streams_are_yielded_ready_in_each_streams_window_order(tmp_path):
    provider = ScriptedProvider(
        {
            ("order_list", 0): ["pending", "pending", "pending", "available"],
            ("customer_list", 2): ["available"],
        }
    )
    orch = make(provider, tmp_path)
    seen = consume(orch, jobs_for((ORDERS, 4), (CUSTOMERS, 3), (REFUNDS, 2)))
    assert all(state is JobState.READY for _, _, state, _, _ in seen)
    for name, count in (("orders", 4), ("customers", 3), ("returns", 2)):
        assert [seq for stream, seq, *_ in seen if stream == name] == list(range(count))
    assert len(provider.created) == 9


def test_a_ready_jobs_files_hold_the_downloaded_bytes_and_are_removed_after_use(tmp_path):
    provider = ScriptedProvider()
    orch = make(provider, tmp_path)
    kept = []
    for job in orch.run(jobs_for((ORDERS, 2))):
        assert job.files and job.files[0].read_bytes().startswith(b"fake://")
        kept.append(job.files[0])
    assert kept and not any(p.exists() for p in kept)


def test_never_more_exports_in_flight_than_max_concurrent_exports(tmp_path):
    provider = ScriptedProvider(
        {
            (t, i): ["pending", "pending", "available"]
            for t in ("order_list", "customer_list", "return_list")
            for i in range(5)
        }
    )
    orch = make(provider, tmp_path, max_concurrent_exports=2)
    seen = consume(orch, jobs_for((ORDERS, 5), (CUSTOMERS, 5), (REFUNDS, 5)))
    assert len(seen) == 15
    assert provider.peak_live == 2


def test_with_one_export_at_a_time_exports_never_overlap(tmp_path):
    provider = ScriptedProvider()
    orch = make(provider, tmp_path, max_concurrent_exports=1)
    consume(orch, jobs_for((ORDERS, 3), (CUSTOMERS, 3)))
    assert provider.peak_live == 1


def test_windows_are_created_oldest_first_across_streams(tmp_path):
    provider = ScriptedProvider()
    orch = make(provider, tmp_path, max_concurrent_exports=1)
    consume(orch, jobs_for((ORDERS, 2), (CUSTOMERS, 2)))
    assert provider.created == [
        ("customer_list", 0),
        ("order_list", 0),
        ("customer_list", 1),
        ("order_list", 1),
    ]


# ------------------------------------------------------------------ failures
def test_a_failed_status_fails_that_job_naming_export_and_status_and_cancels_later_windows(tmp_path):
    provider = ScriptedProvider({("order_list", 1): ["pending", "error"]})
    orch = make(provider, tmp_path, max_concurrent_exports=1, export_attempts=1)
    jobs = jobs_for((ORDERS, 4), (CUSTOMERS, 3))
    seen = consume(orch, jobs)
    orders = [(seq, state) for stream, seq, state, *_ in seen if stream == "orders"]
    assert orders == [(0, JobState.READY), (1, JobState.FAILED)]
    error = next(err for stream, seq, _, err, _ in seen if stream == "orders" and seq == 1)
    assert isinstance(error, ExportFailed)
    failed_id = provider.export_id_of("order_list", 1)
    assert failed_id in str(error) and "'error'" in str(error)
    # later windows of the failed stream: cancelled, never created
    assert ("order_list", 2) not in provider.created
    assert ("order_list", 3) not in provider.created
    assert all(j.state is JobState.CANCELLED for j in jobs if j.stream is ORDERS and j.seq >= 2)
    # other streams complete
    assert [seq for stream, seq, state, *_ in seen if stream == "customers" and state is JobState.READY] == [
        0,
        1,
        2,
    ]


def test_a_user_error_while_creating_fails_only_that_stream(tmp_path):
    from tap_commerce_exports.http.api_client import ApiError

    provider = ScriptedProvider(create_errors={("order_list", 0): [ApiError("HTTP 400 bad type", 400)]})
    orch = make(provider, tmp_path)
    seen = consume(orch, jobs_for((ORDERS, 2), (CUSTOMERS, 2)))
    assert [(s, q, st) for s, q, st, *_ in seen if s == "orders"] == [("orders", 0, JobState.FAILED)]
    assert len([1 for s, _, st, *_ in seen if s == "customers" and st is JobState.READY]) == 2


def test_an_export_pending_past_export_timeout_fails_mentioning_export_timeout(tmp_path):
    provider = ScriptedProvider({("order_list", 0): ["pending"]})
    clock = JumpClock()
    orch = make(
        provider,
        tmp_path,
        poll_interval=5,
        poll_max_interval=120,
        export_timeout=3600,
        **clock.engine_options(),
    )
    seen = consume(orch, jobs_for((ORDERS, 1)))
    ((_, _, state, error, _),) = seen
    waited = int(re.search(r"after (\d+)s", str(error)).group(1))  # type: ignore[union-attr]
    assert 3600 < waited <= 3600 + 120  # failed at the first check past the timeout
    assert state is JobState.FAILED
    assert isinstance(error, ExportFailed)
    assert "export_timeout" in str(error)
    assert provider.export_id_of("order_list", 0) in str(error)


def test_a_busy_provider_is_asked_again_until_it_accepts_the_export(tmp_path):
    provider = ScriptedProvider(create_errors={("order_list", 0): [ExportsBusy(0.01), ExportsBusy(None)]})
    orch = make(provider, tmp_path)
    seen = consume(orch, jobs_for((ORDERS, 1)))
    assert [state for _, _, state, *_ in seen] == [JobState.READY]
    assert provider.created == [("order_list", 0)]


def test_a_provider_busy_past_export_timeout_fails_that_export_naming_export_timeout(tmp_path):
    provider = ScriptedProvider(create_errors={("order_list", 0): [ExportsBusy(10)] * 1000})
    orch = make(provider, tmp_path, poll_interval=5, export_timeout=300, **JumpClock().engine_options())
    seen = consume(orch, jobs_for((ORDERS, 1)))
    ((_, _, state, error, _),) = seen
    assert state is JobState.FAILED
    assert isinstance(error, ExportFailed) and "export_timeout" in str(error)
    assert "503" in str(error)
    assert provider.created == []


def test_an_auth_error_when_creating_fails_every_job_of_the_account_with_it(tmp_path):
    provider = ScriptedProvider(create_errors={("customer_list", 0): [AuthError("check 'access_token'")]})
    orch = make(provider, tmp_path, max_concurrent_exports=1)
    jobs = jobs_for((ORDERS, 2), (CUSTOMERS, 2))
    seen = consume(orch, jobs)
    # nothing was created: every job failed with the one error, each yielded in its order
    assert sorted((s, q, st) for s, q, st, *_ in seen) == [
        ("customers", 0, JobState.FAILED),
        ("customers", 1, JobState.FAILED),
        ("orders", 0, JobState.FAILED),
        ("orders", 1, JobState.FAILED),
    ]
    assert all(isinstance(err, AuthError) and "access_token" in str(err) for *_, err, _ in seen)
    assert all(job.account_failed for job in jobs)
    assert provider.created == []


def test_an_auth_error_while_polling_fails_the_account_too(tmp_path):
    provider = ScriptedProvider()

    def refuse(export_id):
        raise AuthError("check 'access_token'")

    provider.get_export = refuse
    orch = make(provider, tmp_path)
    ((_, _, state, error, _),) = consume(orch, jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED and isinstance(error, AuthError)


def test_a_window_failure_is_not_an_account_failure(tmp_path):
    provider = ScriptedProvider({("order_list", 0): ["error"]})
    jobs = jobs_for((ORDERS, 2))
    consume(make(provider, tmp_path, export_attempts=1), jobs)
    assert jobs[0].state is JobState.FAILED and not jobs[0].account_failed
    assert jobs[1].state is JobState.CANCELLED


# ------------------------------------------------------------------ availability hours
OPENS = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)


def hours(now: datetime) -> Availability:
    if now >= OPENS:
        return Availability(open=True)
    return Availability(open=False, opens_at=OPENS, description="Clover us exports run 10:00-15:00 UTC")


def test_outside_export_hours_with_stop_fails_the_account_with_a_user_error_saying_when_they_open(tmp_path):
    provider = ScriptedProvider(availability=hours)
    orch = make(
        provider, tmp_path, outside_hours="stop", wall_clock=lambda: datetime(2025, 1, 6, 3, 0, tzinfo=UTC)
    )
    ((_, _, state, error, _),) = consume(orch, jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED and isinstance(error, UserError)
    message = str(error)
    assert "2025-01-06 10:00 UTC" in message
    assert "outside_hours" in message
    assert "\n" not in message
    assert provider.created == []


class TickingTime:
    """A monotonic clock that moves 400 s per reading, and a wall clock that follows it
    (so the engine's waits of at most 300 s for the hours to open pass at once)."""

    def __init__(self, wall_start: datetime) -> None:
        self.lock = threading.Lock()
        self.mono = 0.0
        self.wall_start = wall_start

    def clock(self) -> float:
        with self.lock:
            self.mono += 400.0
            return self.mono

    def wall(self) -> datetime:
        with self.lock:
            return self.wall_start + timedelta(seconds=self.mono)


def test_outside_export_hours_with_wait_creates_exports_only_once_they_open(tmp_path, caplog):
    fake = TickingTime(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
    created_at: list[datetime] = []
    provider = ScriptedProvider(availability=hours)
    real_create = provider.create_export

    def create(export_type, window):
        created_at.append(fake.wall())
        return real_create(export_type, window)

    provider.create_export = create
    orch = make(
        provider, tmp_path, outside_hours="wait", clock=fake.clock, wall_clock=fake.wall, export_timeout=1e9
    )
    with caplog.at_level(logging.WARNING, logger="tap_commerce_exports.jobs"):
        seen = consume(orch, jobs_for((ORDERS, 2)))
    assert [state for _, _, state, *_ in seen] == [JobState.READY, JobState.READY]
    assert created_at and all(moment >= OPENS for moment in created_at)
    assert any("2025-01-06 10:00 UTC" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------ downloads
def test_an_expired_url_is_refreshed_from_the_provider_and_the_download_retried(tmp_path):
    provider = ScriptedProvider()
    downloader = ScriptedDownloader(provider, {"fake://1000/v0": [UrlExpired("HTTP 403")]})
    orch = make(provider, tmp_path, downloader=downloader)
    seen = consume(orch, jobs_for((ORDERS, 1)))
    ((_, _, state, _, data),) = seen
    assert state is JobState.READY
    assert provider.refreshes == ["1000"]
    assert downloader.urls == ["fake://1000/v0", "fake://1000/v1"]
    assert data == b"fake://1000/v1"


def test_urls_that_keep_expiring_fail_the_job_instead_of_looping(tmp_path):
    provider = ScriptedProvider()

    class AlwaysExpired(ScriptedDownloader):
        def download(self, url, dest, budget=None):
            self.urls.append(url)
            raise UrlExpired("HTTP 403")

    orch = make(provider, tmp_path, downloader=AlwaysExpired(provider))
    ((_, _, state, error, _),) = consume(orch, jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED and isinstance(error, ExportFailed)
    assert "expiring" in str(error)


def test_a_truncated_download_is_retried(tmp_path):
    provider = ScriptedProvider()
    downloader = ScriptedDownloader(provider, {"fake://1000/v0": [TruncatedDownload("short")] * 2})
    orch = make(provider, tmp_path, downloader=downloader)
    ((_, _, state, _, _),) = consume(orch, jobs_for((ORDERS, 1)))
    assert state is JobState.READY
    assert downloader.urls == ["fake://1000/v0"] * 3


def test_a_download_failing_every_attempt_fails_the_job_naming_the_export(tmp_path):
    provider = ScriptedProvider()
    downloader = ScriptedDownloader(provider, {"fake://1000/v0": [TruncatedDownload("short")] * 50})
    orch = make(provider, tmp_path, downloader=downloader)
    ((_, _, state, error, _),) = consume(orch, jobs_for((ORDERS, 1)))
    assert state is JobState.FAILED
    assert "1000" in str(error) and "5 times" in str(error)


# ------------------------------------------------------------------ wake (webhook)
def test_wake_makes_a_pending_export_checked_at_once_without_waiting_for_the_next_poll(tmp_path):
    # the next poll is an hour away: the run ending (within its hang bound) was the wake-up
    provider = ScriptedProvider({("order_list", 0): ["available"]})  # ready when the webhook fires
    orch = make(
        provider, tmp_path, poll_interval=3600, poll_max_interval=3600, webhook_active=True, real_time=True
    )
    woken: list[bool] = []

    def webhook() -> None:  # on the consumer's thread, once the export exists
        if not woken:
            woken.append(orch.wake("1000"))

    seen: list[JobState] = []
    consumer = threading.Thread(
        target=lambda: seen.extend(job.state for job in orch.run(jobs_for((ORDERS, 1)), on_exports=webhook)),
        daemon=True,
    )
    consumer.start()
    consumer.join(30)  # bounds a hang only
    assert not consumer.is_alive(), "not woken: the export waits for the hour-long poll"
    assert woken == [True]
    assert seen == [JobState.READY]
    assert provider.checks["1000"] == 1


def test_wake_of_an_unknown_export_is_refused(tmp_path):
    orch = make(ScriptedProvider(), tmp_path)
    assert orch.wake("424242") is False
    orch.stop()


def test_windows_already_in_flight_after_a_failure_release_their_places(tmp_path):
    # orders window 0 fails late, after windows 1-4 were created and finished; those can
    # never be emitted, so they must not keep the places the other stream needs
    import threading

    provider = ScriptedProvider({("order_list", 0): ["pending"] * 15 + ["error"]})
    orch = make(provider, tmp_path, max_concurrent_exports=2)
    jobs = jobs_for((ORDERS, 6), (CUSTOMERS, 8))
    result: list = []
    worker = threading.Thread(target=lambda: result.extend(consume(orch, jobs)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the engine stalled on places held by abandoned windows"
    assert [(seq, state) for stream, seq, state, *_ in result if stream == "orders"] == [(0, JobState.FAILED)]
    assert [
        seq for stream, seq, state, *_ in result if stream == "customers" and state is JobState.READY
    ] == list(range(8))
    assert all(
        j.state is JobState.CANCELLED and not j.files for j in jobs if j.stream is ORDERS and j.seq >= 1
    )


# ------------------------------------------------------------------ refused creates (503)
class RecordingCreates(ScriptedProvider):
    """Refuses the first ``refusals`` creates (of whichever stream) with a 503 and a reason."""

    def __init__(self, refusals: int, retry_after: float | None = None, clock=time.monotonic) -> None:
        super().__init__()
        self.refusals_left = refusals
        self.retry_after = retry_after
        self.clock = clock
        self.attempts: list[tuple[float, str]] = []

    def create_export(self, export_type, window):
        with self.lock:
            self.attempts.append((self.clock(), export_type))
            refuse = self.refusals_left > 0
            self.refusals_left -= 1
        if refuse:
            raise ExportsBusy(self.retry_after, "outside availability window")
        return super().create_export(export_type, window)


def test_a_refused_create_holds_back_the_creates_of_every_stream_on_one_doubling_clock(tmp_path):
    clock = JumpClock()
    provider = RecordingCreates(refusals=3, clock=clock)
    # poll_max_interval bounds status checks, not the waits after a refusal
    orch = make(
        provider,
        tmp_path,
        poll_interval=5,
        poll_max_interval=5,
        export_timeout=1000,
        **clock.engine_options(),
    )
    seen = consume(orch, jobs_for((ORDERS, 1), (CUSTOMERS, 1)))
    assert [state for _, _, state, *_ in seen] == [JobState.READY, JobState.READY]
    times = [t for t, _ in provider.attempts]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps == [5, 10, 20, 0]  # whichever stream asks next; once accepted, no wait
    assert len(provider.attempts) == 5


def test_a_retry_after_longer_than_the_back_off_is_honoured(tmp_path):
    clock = JumpClock()
    provider = RecordingCreates(refusals=1, retry_after=90, clock=clock)
    orch = make(provider, tmp_path, poll_interval=5, export_timeout=1000, **clock.engine_options())
    consume(orch, jobs_for((ORDERS, 1)))
    (first, _), (second, _) = provider.attempts
    assert second - first == 90


def test_refusals_past_export_timeout_stop_every_stream_waiting_to_create_with_the_servers_reason(tmp_path):
    clock = JumpClock()
    provider = RecordingCreates(refusals=10_000, clock=clock)
    orch = make(provider, tmp_path, poll_interval=5, export_timeout=50, **clock.engine_options())
    seen = consume(orch, jobs_for((ORDERS, 3), (CUSTOMERS, 2)))
    assert sorted((s, q, st) for s, q, st, *_ in seen) == [
        ("customers", 0, JobState.FAILED),
        ("orders", 0, JobState.FAILED),
    ]
    for *_, error, _ in seen:
        assert isinstance(error, ExportFailed)
        assert 'HTTP 503: "outside availability window"' in str(error) and "export_timeout" in str(error)
    # one clock for both streams: 5 + 10 + 20 s fit in 50 s, the next 40 s do not
    assert [t for t, _ in provider.attempts] == [0, 5, 15, 35]
    assert provider.created == []


def test_the_refusal_clock_doubles_up_to_minutes_never_under_retry_after_and_restarts_on_accept():
    from tap_commerce_exports.jobs.create_refusals import MAX_DELAY, CreateRefusals

    clock = CreateRefusals(base=5)
    assert [clock.refused(float(t), None, "busy") for t in range(4)] == [5, 10, 20, 40]
    assert clock.refusing_for(10.0) == 10.0
    for t in range(20):
        delay = clock.refused(10.0 + t, None, "busy")
    assert delay == MAX_DELAY == 300
    assert clock.refused(40.0, 900, "busy") == 900  # the server asks for longer: honoured
    clock.accepted()
    assert (clock.refusing_for(50.0), clock.refused(50.0, 1, None)) == (0.0, 5)
