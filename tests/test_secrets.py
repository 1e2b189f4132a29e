"""Secrets and trust boundaries: the token goes to the API host only, and nowhere else.

* Not to the file hosts (the sandbox counts any ``Authorization`` it sees there).
* Not across a redirect to another host: the API client never follows redirects, and
  a file host's redirect is followed without credentials.
* Never in the logs, even at DEBUG (singer-sdk reads ``TAP_COMMERCE_EXPORTS_LOGLEVEL`` or
  ``LOGLEVEL``; both are set, and the brief's ``..._LOG_LEVEL`` too): neither the token
  nor a signed URL's ``signature=`` appears on stderr or stdout.
* Temporary files live in a private (0700) directory under ``TMPDIR`` that is gone after
  the run: after success, after a failed export, after SIGTERM.
* Names from the API never become file paths: a file URL whose path is ``../../x``
  writes nothing outside the tap's own temporary directory.
* The webhook receiver refuses bad signatures and oversized bodies, and ignores (200) signed
  deliveries of unknown export ids, without waking anything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Reply, SeenRequest
from tests.sandbox_fixtures import account_config
from tests.tap_harness import run_tap
from tests.test_interruption import tap_command, write_catalog
from tests.waiting import HANG, until

TOKEN = "tok-7Hq2-never-print-me-9x"
DEBUG_ENV = {
    "LOGLEVEL": "DEBUG",
    "TAP_COMMERCE_EXPORTS_LOGLEVEL": "DEBUG",
    "TAP_COMMERCE_EXPORTS_LOG_LEVEL": "DEBUG",
}
START, END = "2025-01-01T00:00:00Z", "2025-01-05T00:00:00Z"
SANDBOX_SETTINGS = dict(token=TOKEN, processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000)
SANDBOX_AFTER_EACH = dict(complete_exports=True)


def config_for(sandbox, provider: str, **overrides) -> dict:
    base = {
        **account_config(sandbox, provider),
        "start_date": START,
        "end_date": END,
        "window_days": 1,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_requests_per_second": 500,
        "export_timeout": 30,
    }
    if provider == "nextcommerce":
        base.update(max_concurrent_exports=2)
    base.update(overrides)
    return base


def catalog(tmp_path: Path, provider: str, streams: list[str]) -> Path:
    return write_catalog({"provider": provider}, streams, tmp_path / f"catalog-{provider}.json")


# ------------------------------------------------------------------ token and logs


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_at_debug_level_neither_the_token_nor_a_signed_url_reaches_the_output(sandbox, tmp_path, provider):
    """With retries on expired and truncated downloads, so warning paths log URLs too."""
    sandbox.control(fault_expired_url=True, fault_truncated_download=True, reset_stats=True)
    streams = ["orders"]
    run = run_tap(
        config_for(sandbox, provider),
        env=DEBUG_ENV,
        args=["--catalog", str(catalog(tmp_path, provider, streams))],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| DEBUG " in run.stderr and "urllib3" in run.stderr, "debug logging was on"
    assert run.records["orders"], "records were emitted"
    for where, text in (("stderr", run.stderr), ("stdout", run.stdout)):
        assert TOKEN not in text, f"the token appears on {where}"
        assert "signature=" not in text, f"a signed URL appears on {where}"
    stats = sandbox.stats()
    assert stats["expired_url_answers"] >= 1 and stats["truncated_downloads_sent"] >= 1
    assert stats["auth_header_on_file_host"] == 0, "the token went to the file host"


def test_a_bad_token_is_refused_without_printing_it(sandbox, tmp_path):
    wrong = "tok-WRONG-do-not-print-42"
    run = run_tap(
        config_for(sandbox, "nextcommerce", access_token=wrong),
        env=DEBUG_ENV,
        args=["--catalog", str(catalog(tmp_path, "nextcommerce", ["orders"]))],
    )
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "access_token" in line
    assert wrong not in run.stderr and wrong not in run.stdout


# ------------------------------------------------------------------ redirects


def test_an_api_redirect_to_another_host_is_not_followed_and_carries_no_token(local_http, tmp_path):
    elsewhere = local_http(lambda req: Reply(201, b'{"id": 1, "status": "pending"}'))
    api = local_http(lambda req: Reply(302, headers={"Location": f"{elsewhere.url}{req.path}"}))
    config = {
        "provider": "nextcommerce",
        "api_url": f"{api.url}/api/admin/",
        "access_token": TOKEN,
        "store": "demo-store",
        "start_date": START,
        "end_date": END,
        "max_requests_per_second": 500,
    }
    run = run_tap(config, args=["--catalog", str(catalog(tmp_path, "nextcommerce", ["orders"]))])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "redirect" in line and "api_url" in line
    assert api.requests and api.requests[0].header("Authorization") == f"Bearer {TOKEN}"
    assert not [r for r in elsewhere.requests if r.header("Authorization")], "token crossed the redirect"
    assert not elsewhere.requests, "the redirect was not followed at all"
    assert TOKEN not in run.stderr


class FakeNextCommerce:
    """A minimal Next Commerce exports API whose download URLs are chosen by the test."""

    def __init__(self, local_http, file_urls: list[str]) -> None:
        self.file_urls = file_urls
        self.windows: dict[int, str] = {}
        self.server = local_http(self.app)

    def export(self, n: int) -> bytes:
        return json.dumps(
            {"id": n, "status": "available", "type": "order_list", "date_from": self.windows[n], "url": None}
        ).encode()

    def app(self, req: SeenRequest) -> Reply:
        if req.method == "POST" and req.path == "/api/admin/exports/":
            n = len(self.windows) + 1
            self.windows[n] = json.loads(req.body)["date_from"]
            return Reply(201, self.export(n))
        match = re.fullmatch(r"/api/admin/exports/(\d+)/(download/)?", req.path)
        if match is None:
            return Reply(404, b'{"detail": "Not found."}')
        n = int(match.group(1))
        if match.group(2):
            return Reply(200, json.dumps({"url": self.file_urls[n - 1]}).encode())
        return Reply(200, self.export(n))

    def csv_for(self, n: int) -> bytes:
        created = self.windows[n].replace("T00:00:00Z", "T10:00:00Z")
        return f"number,created_at\r\nN-{n},{created}\r\n".encode()


def test_file_urls_with_hostile_paths_or_redirects_write_nothing_outside_and_carry_no_token(
    local_http, tmp_path
):
    seen_files: list[SeenRequest] = []
    final = local_http(lambda req: (seen_files.append(req), Reply(200, fake.csv_for(4)))[1])

    def files_app(req: SeenRequest) -> Reply:
        seen_files.append(req)
        if req.path.startswith("/redirect"):
            return Reply(302, headers={"Location": f"{final.url}/final.csv?signature=hop"})
        n = int(re.search(r"n=(\d)", req.path).group(1))
        return Reply(200, fake.csv_for(n))

    files = local_http(files_app)
    hostile = [
        f"{files.url}/../../escape/x?n=1&signature=s1",
        f"{files.url}/%2e%2e/%2e%2e/escape/x.csv?n=2&signature=s2",
        f"{files.url}/media/..%2F..%2F..%2Fescape%2Fx.csv?n=3&signature=s3",
        f"{files.url}/redirect?n=4&signature=s4",
    ]
    fake = FakeNextCommerce(local_http, hostile)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    config = {
        "provider": "nextcommerce",
        "api_url": f"{fake.server.url}/api/admin/",
        "access_token": TOKEN,
        "store": "demo-store",
        "start_date": START,
        "end_date": END,
        "window_days": 1,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_requests_per_second": 500,
    }
    run = run_tap(
        config,
        env={**DEBUG_ENV, "TMPDIR": str(tmpdir)},
        args=["--catalog", str(catalog(tmp_path, "nextcommerce", ["orders"]))],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(r["number"] for r in run.records["orders"]) == ["N-1", "N-2", "N-3", "N-4"]
    assert len(seen_files) == 5, "four file URLs, one of them redirected"
    assert not [r for r in seen_files if r.header("Authorization")], "a file host saw the token"
    assert fake.server.requests[0].header("Authorization") == f"Bearer {TOKEN}"
    assert os.listdir(tmpdir) == [], "the private temp dir is gone"
    escaped = [p for p in tmp_path.rglob("*") if p.name in ("x", "x.csv", "escape", "final.csv")]
    assert not escaped, f"a name from a URL became a file: {escaped}"
    assert "signature=" not in run.stderr and TOKEN not in run.stderr


# ------------------------------------------------------------------ temporary files


def _watch_tmpdir(proc: subprocess.Popen, tmpdir: Path) -> dict[str, int]:
    """Modes of every entry seen directly under ``tmpdir`` while ``proc`` runs."""
    modes: dict[str, int] = {}
    while proc.poll() is None:
        for entry in os.scandir(tmpdir):
            try:
                modes[entry.name] = stat.S_IMODE(entry.stat().st_mode)
            except FileNotFoundError:
                pass
        time.sleep(0.005)
    return modes


def _start(config: dict, tmp_path: Path, streams: list[str], env: dict | None = None):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    cat = catalog(tmp_path, config["provider"], streams)
    proc = subprocess.Popen(
        tap_command(tmp_path / "config.json", cat, None),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmpdir), **(env or {})},
    )
    return proc, tmpdir


def test_temp_files_live_in_a_private_dir_that_is_removed_after_the_run(sandbox, tmp_path):
    # a download is held in flight until the temp dir was seen, then let go (the cut one
    # is retried): what is seen does not depend on how fast the watcher is scheduled
    sandbox.control(fault_hold_download=True)
    proc, tmpdir = _start(config_for(sandbox, "nextcommerce"), tmp_path, ["orders", "customers"])
    try:
        assert until(lambda: sandbox.stats()["downloads_held"] >= 1 and download_files(tmpdir))
        modes = {entry.name: stat.S_IMODE(entry.stat().st_mode) for entry in os.scandir(tmpdir)}
    finally:
        sandbox.control(fault_hold_download=False)
    modes.update(_watch_tmpdir(proc, tmpdir))
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
    ours = {n: m for n, m in modes.items() if n.startswith("tap-commerce-exports-")}
    assert ours, f"the tap's temp dir was seen under TMPDIR (saw {modes})"
    assert set(ours.values()) == {0o700}, {n: oct(m) for n, m in ours.items()}
    assert set(modes) == set(ours), "nothing else is written to TMPDIR"
    assert os.listdir(tmpdir) == []


def test_temp_files_are_removed_after_a_failed_export(sandbox, tmp_path):
    sandbox.control(fault_export_failed=1)
    proc, tmpdir = _start(
        config_for(  # windows of its own: another test's exports would be found and followed
            sandbox,
            "nextcommerce",
            start_date="2025-01-03T12:00:00Z",
            max_concurrent_exports=1,
            export_attempts=1,
            min_window_days=365,
        ),
        tmp_path,
        ["orders", "customers"],
    )
    _watch_tmpdir(proc, tmpdir)
    assert proc.wait() == 2
    assert "failed" in proc.stderr.read().decode()
    assert os.listdir(tmpdir) == []


def test_temp_files_are_removed_when_the_tap_is_stopped_with_sigterm_mid_download(sandbox, tmp_path):
    # the sandbox holds every download open after half its body: the signal comes while a
    # download is in flight, its partial file in the tap's private dir
    sandbox.control(fault_hold_download=True)
    config = config_for(sandbox, "nextcommerce", end_date="2025-02-01T00:00:00Z")
    proc, tmpdir = _start(config, tmp_path, ["orders", "customers"])
    try:
        assert until(lambda: sandbox.stats()["downloads_held"] >= 1 and download_files(tmpdir)), (
            "no download was ever in flight"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=HANG) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert os.listdir(tmpdir) == []


def download_files(tmpdir: Path) -> list[Path]:
    """Files under ``tmpdir``: a download's destination, open while it is in flight."""
    found = []
    for path in tmpdir.rglob("*"):
        try:
            if path.is_file():
                found.append(path)
        except FileNotFoundError:
            pass
    return found


# The webhook receiver's specs (signature, size, unknown exports, bodies, other events)
# live once, in tests/test_webhook_receiver.py.
