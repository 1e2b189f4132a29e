"""A real token never reaches the sandbox: `sandbox_token` is what a local emulator gets.

Why a setting of its own: in a Meltano project the real `access_token` lives in the
environment or `.env`, and those outrank every environment of `meltano.yml`, so a dev
environment that pinned `access_token: sandbox-token` sent the real token to the sandbox.
With `sandbox_token` set, `access_token` is never sent, whatever its source; and
`sandbox_token` itself is refused for a host that is not this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from commerce_sandbox.faults import Stats, credential_fingerprint
from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.settings import load_settings
from tests.tap_harness import run_tap

REAL = "prod-token-that-must-stay-home-51"


def nc(**overrides):
    config = {"store": "demo-store", "start_date": "2025-01-01", "end_date": "2025-01-03"}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def test_with_a_sandbox_token_the_sandbox_token_is_sent_and_the_access_token_is_not():
    s = load_settings(
        nc(access_token=REAL, sandbox_token="sandbox-token", api_url="http://127.0.0.1:8000/api/admin/")
    )
    assert s.access_token == "sandbox-token"


def test_a_sandbox_token_alone_is_enough_credentials():
    s = load_settings(nc(sandbox_token="sandbox-token", api_url="http://localhost:9/api/admin/"))
    assert s.access_token == "sandbox-token"


@pytest.mark.parametrize(
    "api_url", [None, "https://demo-store.29next.store/api/admin/", "https://10.0.0.8/api/admin/"]
)
def test_a_sandbox_token_for_a_host_that_is_not_this_machine_is_refused_in_one_line(api_url):
    with pytest.raises(ConfigError) as info:
        load_settings(nc(access_token=REAL, sandbox_token="sandbox-token", api_url=api_url))
    message = str(info.value)
    assert "\n" not in message and "'sandbox_token'" in message and "not on this machine" in message
    assert REAL not in message


def test_without_a_sandbox_token_the_access_token_is_sent_as_before():
    s = load_settings(nc(access_token=REAL))
    assert s.access_token == REAL


def test_the_sandbox_keeps_fingerprints_of_the_credentials_it_saw_never_the_credentials():
    stats = Stats()
    stats.credential_seen(f"Bearer {REAL}")
    snapshot = json.dumps(stats.snapshot())
    assert credential_fingerprint(REAL) in snapshot
    assert REAL not in snapshot


@pytest.mark.e2e
def test_a_sync_with_both_tokens_shows_the_sandbox_only_its_own():
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.02, nc_rate_limit=1000)) as sandbox:
        config = nc(
            access_token=REAL,
            sandbox_token="sandbox-token",
            api_url=sandbox.api_url,
            poll_interval=0.02,
            poll_max_interval=0.1,
            max_requests_per_second=500,
        )
        run = run_tap(config, streams=["orders"])
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.records["orders"]
        seen = sandbox.stats()["credential_fingerprints"]
    assert seen == [credential_fingerprint("sandbox-token")]


def test_under_a_log_config_host_the_error_line_is_logged_at_error_level(tmp_path):
    """Meltano hands the tap a logging config (SINGER_SDK_LOG_CONFIG) with the SDK's JSON
    formatter and parses stderr by level: the error must be an ERROR record, one line."""
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"json": {"()": "singer_sdk.logging.StructuredFormatter"}},
                "handlers": {
                    "console": {
                        "class": "logging.StreamHandler",
                        "formatter": "json",
                        "stream": "ext://sys.stderr",
                    }
                },
                "root": {"handlers": ["console"], "level": "INFO"},
            }
        )
    )
    config = tmp_path / "config.json"
    config.write_text(json.dumps(nc(access_token=REAL, start_date="someday")))
    proc = subprocess.run(
        [sys.executable, "-m", "tap_commerce_exports", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "SINGER_SDK_LOG_CONFIG": str(log_config)},
    )
    assert proc.returncode == 2
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1, proc.stderr
    assert "setting 'start_date' is 'someday'" in errors[0]["message"]
    assert "Traceback" not in proc.stderr and REAL not in proc.stderr
    assert not any("env var settings" in r["message"] for r in records)
