"""The sandbox's shared state: live config, exports, files, signed URLs, truth.

One :class:`SandboxState` is shared by every request thread and background job; all
mutation happens under its lock. Exports are processed by one background thread each:
generate the file(s) into a private temp directory, wait out ``processing_delay`` on
the monotonic clock, then (Next Commerce) fire the ``export.created`` webhook. Request
handlers only *read* an export's status, computed from the clock, so none of them
ever sleeps.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from commerce_sandbox.accounts import CLOVER, NEXTCOMMERCE, Account, resolve
from commerce_sandbox.clock import Clock
from commerce_sandbox.config import (
    CLOVER_TYPES,
    NC_TYPES,
    SandboxConfig,
    apply_changes,
)
from commerce_sandbox.csvgen import headers_for, normalize_header, write_csv
from commerce_sandbox.data_clover import CloverData
from commerce_sandbox.data_nextcommerce import (
    NextCommerceData,
    column_names,
    key_column,
)
from commerce_sandbox.faults import (
    CloverPenalty,
    Concurrency,
    FileAttempts,
    SlidingWindowLimiter,
    Stats,
)
from commerce_sandbox.unpublished import file_rows, reshaped

#: Fields that change the generated data; data generators are cached per their values.
DATA_FIELDS = (
    "seed",
    "data_start",
    "data_end",
    "rows_per_day",
    "large_file_rows",
    "utc_offsets",
)


@dataclass
class FileEntry:
    """A file the file host can serve."""

    path: str
    content_type: str


@dataclass
class ExportJob:
    """One export of either provider, as the sandbox tracks it."""

    provider: str
    id: Any
    export_type: str
    #: The store or merchant it belongs to (``Account.name``).
    account: str
    created_wall: float
    created_mono: float
    delay: float
    #: NC: date_from/date_to strings as answered; Clover: startTime/endTime ms.
    params: dict[str, Any]
    fail: bool
    never_ready: bool
    #: Paths (file keys) of the generated files, in order.
    files: list[str] = field(default_factory=list)
    file_ready: threading.Event = field(default_factory=threading.Event)
    webhook_sent: bool = False
    #: Whether the never-ready fault is still switched on; an export created under it
    #: stays unfinished only while it is, so switching the fault off releases it.
    fault_still_on: Callable[[], bool] = lambda: True

    @property
    def stuck(self) -> bool:
        return self.never_ready and self.fault_still_on()

    def phase(self, now_mono: float) -> str:
        """``pending`` | ``running`` | ``ready`` | ``failed`` — provider-neutral status."""
        if self.stuck:
            return "running"
        if now_mono - self.created_mono < self.delay:
            return "pending" if now_mono - self.created_mono < 0.2 * self.delay else "running"
        if self.fail:
            return "failed"
        return "ready" if self.file_ready.is_set() else "running"

    def percent(self, now_mono: float) -> int:
        """Progress 0-100 from elapsed time (Clover's ``percentComplete``)."""
        phase = self.phase(now_mono)
        if phase in ("ready", "failed"):
            return 100
        if phase == "pending" or self.stuck or self.delay <= 0:
            return 0
        return max(0, min(99, int(100 * (now_mono - self.created_mono) / self.delay)))


def _too_long(limit_days: float, params: dict[str, Any]) -> bool:
    """Whether an export over ``params``'s range passes ``fault_fail_above_days``."""
    if limit_days <= 0:
        return False
    if "_from_us" in params:
        span_s = (params["_to_us"] - params["_from_us"]) / 1e6
    else:
        span_s = (params["endTime"] - params["startTime"]) / 1e3
    return bool(span_s > limit_days * 86400)


class SandboxState:
    """Everything the request handlers and background jobs share."""

    def __init__(self, config: SandboxConfig) -> None:
        self.lock = threading.RLock()
        self.config = config
        self.clock = Clock(lambda: self.config)
        self.stats = Stats()
        self.nc_limiter = SlidingWindowLimiter()
        self.clover_limiter = SlidingWindowLimiter()
        self.clover_penalty = CloverPenalty()
        self.clover_inflight = Concurrency()
        self.file_attempts = FileAttempts()
        self.tmpdir = tempfile.mkdtemp(prefix="tap-commerce-sandbox-")
        self.stopping = threading.Event()
        self.nc_exports: dict[int, ExportJob] = {}
        self.clover_exports: dict[str, ExportJob] = {}
        self.files: dict[str, FileEntry] = {}
        self._next_nc_id = 1
        self._next_clover_n = 1
        self._data_cache: dict[str, Any] = {}
        self._url_key = hashlib.sha256(f"sandbox-url-key:{config.seed}:{config.token}".encode()).digest()
        #: Set by the server: fires a webhook for an NC export (runs in a job thread).
        self.on_nc_ready: Callable[[ExportJob], None] | None = None

    # --- config and faults ---------------------------------------------------

    def update_config(self, changes: dict[str, Any]) -> SandboxConfig:
        """Apply runtime changes (validated); returns the new config."""
        with self.lock:
            self.config = apply_changes(self.config, changes)
            return self.config

    def reset_limits(self) -> None:
        """Forget every rate-limit window, Clover penalty and in-flight count."""
        self.nc_limiter = SlidingWindowLimiter()
        self.clover_limiter = SlidingWindowLimiter()
        self.clover_penalty = CloverPenalty()

    def fault_applies(self, account: str | None) -> bool:
        """Whether faults fire for ``account`` (``fault_account`` unset: for every one)."""
        target = self.config.fault_account
        return target is None or account == target

    def take_fault(self, name: str, account: str | None = None) -> bool:
        """Consume one firing of a counting fault (``fault_500``...); True if it fires.

        With ``fault_account`` set, it fires only for that account's requests.
        """
        if not self.fault_applies(account):
            return False
        with self.lock:
            left = getattr(self.config, name)
            if left > 0:
                setattr(self.config, name, left - 1)
                return True
            return False

    # --- URLs ------------------------------------------------------------------

    @property
    def api_host(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.config.port}/api/admin/"

    def nc_api_url(self, account: Account) -> str:
        """The ``api_url`` of a store: ``/api/admin/`` for the default one, else
        ``/stores/{store}/api/admin/`` (the real API tells stores apart by host)."""
        if account.default:
            return self.api_url
        return f"http://{self.api_host}:{self.config.port}/stores/{account.name}/api/admin/"

    # --- accounts --------------------------------------------------------------

    def accounts(self, provider: str) -> dict[str, Account]:
        """Every account of ``provider`` by name, the default one first."""
        return resolve(self.config)[provider]

    def account(self, provider: str, name: str | None = None) -> Account | None:
        """An account by name (None: the default one); None if there is no such one."""
        accounts = self.accounts(provider)
        if name is None:
            return next(iter(accounts.values()))
        return accounts.get(name)

    def _account_or_raise(self, provider: str, name: str | None) -> Account:
        if provider not in (NEXTCOMMERCE, CLOVER):
            raise ValueError(f"unknown provider: {provider}")
        account = self.account(provider, name)
        if account is None:
            raise ValueError(f"unknown {provider} account: {name}")
        return account

    def account_list(self) -> list[dict[str, Any]]:
        """Every account as the control endpoint lists it: what a tap config needs."""
        out: list[dict[str, Any]] = []
        for provider in (NEXTCOMMERCE, CLOVER):
            for acc in self.accounts(provider).values():
                url = self.nc_api_url(acc) if provider == NEXTCOMMERCE else self.clover_url
                key = "store" if provider == NEXTCOMMERCE else "merchant_id"
                out.append(
                    {
                        "provider": provider,
                        key: acc.name,
                        "token": acc.token,
                        "api_url": url,
                        "default": acc.default,
                    }
                )
        return out

    @property
    def clover_url(self) -> str:
        return f"http://{self.api_host}:{self.config.port}"

    @property
    def file_base(self) -> str:
        """Where files are served: another host name for the same server (``localhost``),
        so that a tap leaking its token to "the file host" is caught."""
        return f"http://localhost:{self.config.port}"

    def sign(self, path: str, expires: int) -> str:
        return hmac.new(self._url_key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()[:40]

    def signed_url(self, path: str) -> str:
        """A fresh signed URL for ``path`` valid for ``url_ttl`` seconds of wall clock."""
        expires = int(self.clock.wall() + self.config.url_ttl)
        return f"{self.file_base}{path}?expires={expires}&signature={self.sign(path, expires)}"

    # --- data ------------------------------------------------------------------

    def _data_key(self, cfg: SandboxConfig) -> str:
        return json.dumps([getattr(cfg, f) for f in DATA_FIELDS], sort_keys=True, default=str)

    def nc_data(self, cfg: SandboxConfig | None = None, account: Account | None = None) -> NextCommerceData:
        """One store's rows (None: the default store's)."""
        cfg = cfg or self.config
        key = f"nc:{_data_identity(account)}:" + self._data_key(cfg)
        with self.lock:
            data = self._data_cache.get(key)
            if data is None:
                data = self._data_cache[key] = NextCommerceData(cfg, account)
            return data

    def clover_data(self, cfg: SandboxConfig | None = None, account: Account | None = None) -> CloverData:
        """One merchant's objects (None: the default merchant's)."""
        cfg = cfg or self.config
        key = f"clover:{_data_identity(account)}:" + self._data_key(cfg)
        with self.lock:
            data = self._data_cache.get(key)
            if data is None:
                data = self._data_cache[key] = CloverData(cfg, account)
            return data

    def truth(
        self, provider: str, export_type: str, start: datetime, end: datetime, account: str | None = None
    ) -> list[dict[str, Any]]:
        """Ground-truth rows of one account (None: the default one) whose window-field
        instant is in [start, end).

        Next Commerce rows are dicts keyed by normalized (snake_case) header, values the
        cell strings exactly as written in files (``None`` for empty cells). Clover rows
        are the objects exactly as in the JSON files.
        """
        start_us, end_us = _to_us(start), _to_us(end)
        acc = self._account_or_raise(provider, account)
        if provider == "nextcommerce":
            if export_type not in NC_TYPES:
                raise ValueError(f"unknown Next Commerce export type: {export_type}")
            names = [normalize_header(n) for n in column_names(export_type, self.config.window_column_names)]
            return [
                {n: (v if v != "" else None) for n, v in zip(names, row, strict=False)}
                for row in self.nc_data(None, acc).iter_rows(export_type, start_us, end_us, False)
            ]
        if provider == "clover":
            if export_type not in CLOVER_TYPES:
                raise ValueError(f"unknown Clover export type: {export_type}")
            lo_ms, hi_ms = -(-start_us // 1000), -(-end_us // 1000)
            return list(self.clover_data(None, acc).iter_objects(export_type, lo_ms, hi_ms, False))
        raise ValueError(f"unknown provider: {provider}")

    def truth_keys(
        self, provider: str, export_type: str, start: datetime, end: datetime, account: str | None = None
    ) -> list[Any]:
        """Primary keys of :meth:`truth` rows: str order numbers, int ids, str Clover ids."""
        rows = self.truth(provider, export_type, start, end, account)
        if provider == "clover":
            return [r["id"] for r in rows]
        key = key_column(export_type)
        if key == "number":
            return [r["number"] for r in rows]
        return [int(r[key]) for r in rows]

    # --- exports ---------------------------------------------------------------

    def new_job(
        self, provider: str, export_type: str, params: dict[str, Any], account: Account | None = None
    ) -> ExportJob:
        """Register an export of ``account`` (None: the default one), draw its fault
        fate, and start its background job."""
        cfg = self.config
        acc = account or self._account_or_raise(provider, None)
        faulty = self.fault_applies(acc.name)
        fail = self.take_fault("fault_export_failed", acc.name) or (
            faulty and _too_long(cfg.fault_fail_above_days, params)
        )
        with self.lock:
            if provider == "nextcommerce":
                job_id: Any = self._next_nc_id
                self._next_nc_id += 1
            else:
                from commerce_sandbox.data_clover import clover_id

                job_id = clover_id(cfg.seed, "EXPORT", self._next_clover_n)
                self._next_clover_n += 1
            job = ExportJob(
                provider=provider,
                id=job_id,
                export_type=export_type,
                account=acc.name,
                created_wall=self.clock.wall(),
                created_mono=self.clock.mono(),
                delay=cfg.processing_delay,
                params=params,
                fail=fail,
                never_ready=faulty and cfg.fault_never_ready,
                fault_still_on=lambda: self.config.fault_never_ready,
            )
            if provider == "nextcommerce":
                self.nc_exports[job_id] = job
            else:
                self.clover_exports[job_id] = job
        self.stats.export_created(provider, acc.name)
        if fail:
            self.stats.incr("exports_failed")
        snapshot = SandboxConfig(**{k: v for k, v in cfg.to_dict().items()})
        threading.Thread(
            target=self._run_job, args=(job, snapshot), daemon=True, name=f"export-{job_id}"
        ).start()
        return job

    def _run_job(self, job: ExportJob, cfg: SandboxConfig) -> None:
        """Generate the export's files, then wait for readiness and notify."""
        try:
            if not job.fail:
                if job.provider == "nextcommerce":
                    self._write_nc_file(job, cfg)
                else:
                    self._write_clover_files(job, cfg)
        finally:
            job.file_ready.set()
        if job.provider != "nextcommerce" or job.fail or job.never_ready:
            return
        remaining = job.created_mono + job.delay - time.monotonic()
        if remaining > 0 and self.stopping.wait(remaining):
            return
        if self.on_nc_ready is not None and not self.stopping.is_set():
            self.on_nc_ready(job)

    def _write_nc_file(self, job: ExportJob, cfg: SandboxConfig) -> None:
        tag = hmac.new(self._url_key, f"nc:{job.id}".encode(), hashlib.sha256).hexdigest()[:8]
        name = f"{job.export_type}_{job.id}_{tag}.csv"
        url_path = f"/media/{job.account}/export_csv/{name}"
        disk = os.path.join(self.tmpdir, name)
        data = self.nc_data(cfg, resolve(cfg)[NEXTCOMMERCE].get(job.account))
        window = (job.export_type, job.params["_from_us"], job.params["_to_us"], cfg.date_to_inclusive)
        headers = headers_for(job.export_type, cfg.header_style_for(job.export_type), cfg.window_column_names)
        if reshaped(cfg, job.export_type):  # a file shape of the unpublished facts' settings
            headers, lines = file_rows(cfg, job.export_type, headers, data.iter_rows(*window))
        else:
            lines = data.iter_csv_lines(*window)
        write_csv(disk, headers, lines)
        with self.lock:
            self.files[url_path] = FileEntry(disk, "text/csv")
            job.files.append(url_path)

    def _write_clover_files(self, job: ExportJob, cfg: SandboxConfig) -> None:
        data = self.clover_data(cfg, resolve(cfg)[CLOVER].get(job.account))
        per_file = cfg.clover_objects_per_file
        chunk: list[dict[str, Any]] = []
        n = 0

        def flush() -> None:
            nonlocal n
            n += 1
            name = f"{job.id}_{n:04d}.json"
            disk = os.path.join(self.tmpdir, name)
            with open(disk + ".part", "w", encoding="utf-8") as fh:
                json.dump({"elements": chunk}, fh, ensure_ascii=False)
            os.replace(disk + ".part", disk)
            url_path = f"/clover-files/{job.account}/{job.id}/{n:04d}.json"
            with self.lock:
                self.files[url_path] = FileEntry(disk, "application/json")
                job.files.append(url_path)

        for obj in data.iter_objects(
            job.export_type, job.params["startTime"], job.params["endTime"], cfg.date_to_inclusive
        ):
            chunk.append(obj)
            if len(chunk) >= per_file:
                flush()
                chunk = []
        if chunk:
            flush()

    def complete_exports(self) -> int:
        """Make every unfinished export ready as soon as its file is (control action).

        Lets a test or script free Clover's running-export slots without waiting out a
        long ``processing_delay``; waits for their files, returns how many were hurried.
        """
        now = self.clock.mono()
        hurried: list[ExportJob] = []
        with self.lock:
            for job in [*self.nc_exports.values(), *self.clover_exports.values()]:
                if job.phase(now) in ("pending", "running"):
                    job.delay = 0.0
                    job.never_ready = False
                    hurried.append(job)
        deadline = time.monotonic() + 30
        for job in hurried:  # a control action may wait; API handlers never do
            job.file_ready.wait(max(0.0, deadline - time.monotonic()))
        return len(hurried)

    def clover_running(self, merchant: str | None = None) -> int:
        """Clover exports not yet finished (queued or in progress) of one merchant
        (None: of every merchant). The running-export cap is per merchant."""
        now = self.clock.mono()
        with self.lock:
            return sum(
                1
                for j in self.clover_exports.values()
                if (merchant is None or j.account == merchant) and j.phase(now) in ("pending", "running")
            )

    def close(self) -> None:
        """Stop background jobs and delete every generated file."""
        self.stopping.set()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _data_identity(account: Account | None) -> str:
    """What of an account its data depends on (never its token)."""
    return "default" if account is None or account.default else f"{account.data_seed}:{account.id_base}"


def _to_us(dt: datetime) -> int:
    """Aware (or naive = UTC) datetime to integer epoch microseconds, exactly."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_us(dt: datetime) -> int:
    """Public alias of the exact datetime -> µs conversion."""
    return _to_us(dt)
