"""The export engine's scripted fakes, shared by the engine's specs (test_orchestrator,
test_engine_races, test_engine_accounts, test_durable_exports, test_webhook_receiver).

:class:`ScriptedProvider` answers each (export type, window) with the statuses a spec
scripts and records everything asked of it; :class:`ScriptedDownloader` writes the URL
as the file and fails as scripted. (Not to be confused with ``tests/fake_provider.py``:
a whole platform registered with the tap, served over loopback, for end-to-end specs.)
``make`` builds the engine under test on virtual time; ``jobs_for`` plans daily windows.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tap_commerce_exports.http.download import FileDownloader
from tap_commerce_exports.jobs.job import ExportJob
from tap_commerce_exports.jobs.orchestrator import ExportOrchestrator
from tap_commerce_exports.providers.base import (
    Availability,
    ExportPhase,
    ExportProvider,
    ExportStatus,
    ProviderFacts,
)
from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.windows import Window, plan_windows
from tests.engine_clock import JumpClock

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)

ORDERS = ExportStreamDefinition("orders", "order_list", ("number",), "created_at", "x.json")
CUSTOMERS = ExportStreamDefinition("customers", "customer_list", ("id",), "date_joined", "x.json")
REFUNDS = ExportStreamDefinition("returns", "return_list", ("id",), "created_at", "x.json")

PHASES = {"pending": ExportPhase.PENDING, "running": ExportPhase.RUNNING, "available": ExportPhase.DONE}


class ScriptedProvider(ExportProvider):
    """Scripted statuses per (export type, window index); records everything asked of it."""

    facts = ProviderFacts("fake", "Fake", "csv", (ORDERS, CUSTOMERS, REFUNDS), 30, None, 4, 4.0, None, False)

    def __init__(self, statuses=None, *, create_errors=None, availability=None) -> None:
        super().__init__(settings=None)  # type: ignore[arg-type]
        self.statuses = statuses or {}  # (export_type, window_index) -> list of raw statuses
        self.create_errors = create_errors or {}  # (export_type, window_index) -> list of exceptions
        self.availability_fn = availability
        self.lock = threading.Lock()
        self.created: list[tuple[str, int]] = []
        self.by_id: dict[str, tuple[str, int]] = {}
        self.scripts: dict[str, list[str]] = {}
        self.checks: dict[str, int] = {}
        self.url_versions: dict[str, int] = {}
        self.refreshes: list[str] = []
        self.live: set[str] = set()  # created and not yet downloaded
        self.peak_live = 0
        self.created_event = threading.Event()

    @property
    def account(self) -> str:
        return "fake"

    def check_access(self) -> str:
        return "ok"

    @staticmethod
    def index(window: Window) -> int:
        return int((window.start - T0) / timedelta(days=1))

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        key = (export_type, self.index(window))
        with self.lock:
            errors = self.create_errors.get(key)
            if errors:
                raise errors.pop(0)
            export_id = str(1000 + len(self.created))
            self.created.append(key)
            self.by_id[export_id] = key
            self.scripts[export_id] = list(self.statuses.get(key, ["pending", "available"]))
            self.checks[export_id] = 0
            self.url_versions[export_id] = 0
            self.live.add(export_id)
            self.peak_live = max(self.peak_live, len(self.live))
        self.created_event.set()
        return ExportStatus(export_id, ExportPhase.PENDING, "pending")

    def get_export(self, export_id: str) -> ExportStatus:
        with self.lock:
            self.checks[export_id] += 1
            script = self.scripts[export_id]
            raw = script.pop(0) if len(script) > 1 else script[0]
        return ExportStatus(export_id, PHASES.get(raw, ExportPhase.FAILED), raw)

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        with self.lock:
            if refresh:
                self.refreshes.append(status.export_id)
                self.url_versions[status.export_id] += 1
            return [f"fake://{status.export_id}/v{self.url_versions[status.export_id]}"]

    def availability(self, now: datetime) -> Availability:
        if self.availability_fn is None:
            return Availability(open=True)
        return self.availability_fn(now)

    def export_id_of(self, export_type: str, index: int) -> str:
        return next(i for i, k in self.by_id.items() if k == (export_type, index))


class ScriptedDownloader(FileDownloader):
    """Writes the URL as the file's content; failures scripted per URL (the real
    downloader's stop, pause and per-export budget are kept)."""

    def __init__(self, provider: ScriptedProvider, failures=None) -> None:
        super().__init__()
        self.provider = provider
        self.failures = failures or {}  # url -> list of exceptions to raise first
        self.urls: list[str] = []
        self.lock = threading.Lock()

    def download(self, url: str, dest: Path, budget=None) -> int:
        with self.lock:
            self.urls.append(url)
            errors = self.failures.get(url)
            if errors:
                raise errors.pop(0)
        data = url.encode()
        dest.write_bytes(data)
        export_id = url.split("/")[2]
        with self.provider.lock:
            self.provider.live.discard(export_id)
        return len(data)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Autouse where imported: pauses between retries take no real time."""
    monkeypatch.setattr(ExportOrchestrator, "retry_pause", 0.001)


def jobs_for(*streams_and_counts) -> list[ExportJob]:
    jobs = []
    for stream, count in streams_and_counts:
        windows = plan_windows(T0, T0 + timedelta(days=count), timedelta(days=1))
        jobs += [ExportJob(stream, w, seq) for seq, w in enumerate(windows)]
    return jobs


def make(provider, tmp_path, *, downloader=None, real_time: bool = False, **kwargs) -> ExportOrchestrator:
    """The engine under test, on virtual time (:class:`JumpClock`) unless the spec gives
    its own clock or wait, or asks for ``real_time`` (it waits on another thread while
    an export is pending: virtual time would race ahead of it)."""
    options = dict(max_concurrent_exports=4, poll_interval=0.005, poll_max_interval=0.02, export_timeout=10.0)
    if not real_time and not {"clock", "wait"} & kwargs.keys():
        options.update(JumpClock().engine_options())
    options.update(kwargs)
    return ExportOrchestrator(
        provider, workdir=tmp_path / "work", downloader=downloader or ScriptedDownloader(provider), **options
    )


def consume(orch, jobs):
    """Run the engine; note each yielded job as (stream, seq, state, error, first file's bytes)."""
    seen = []
    for job in orch.run(jobs):
        data = job.files[0].read_bytes() if job.files else None
        seen.append((job.stream.name, job.seq, job.state, job.error, data))
    return seen
