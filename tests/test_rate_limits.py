"""End to end: the published request limits hold in every 1-second window the server sees.

The sandbox refuses (429) any request over its limit in any sliding second, and counts
the 429s it sends. A busy run (13 streams x 9 windows, exports ready at once, so
creates, status checks and download-URL requests of many exports overlap) must get
none. The Next Commerce limit is scaled up 5x (20/s) to keep the run short (at 4/s:
``scripts/rate_limits.py``); the limiter's window does not depend on the rate, and the
tap saturates its limit at 20/s as it does at 4/s (main got 14 responses 429 here).
"""

from __future__ import annotations

import pytest

from tests.tap_harness import run_tap

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"


def test_a_busy_next_commerce_run_gets_no_429_at_the_published_limit_scaled_5x():
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.0, nc_rate_limit=20, retry_after=1)) as sb:
        run = run_tap(
            {
                "provider": "nextcommerce",
                "api_url": sb.api_url,
                "access_token": "sandbox-token",
                "store": "demo-store",
                "start_date": START,
                "end_date": END,
                "window_days": 7,
                "poll_interval": 0.05,
                "poll_max_interval": 0.5,
                "max_requests_per_second": 20,
                "export_timeout": 120,
            }
        )
        stats = sb.stats()
    assert run.returncode == 0, run.stderr[-2000:]
    assert stats["exports_created"]["nextcommerce"] == 117
    assert stats["429s_sent"] == 0


def test_a_busy_clover_run_keeps_both_the_rate_and_the_in_flight_limit():
    from commerce_sandbox import SandboxConfig, SandboxServer

    cfg = SandboxConfig(
        port=0,
        processing_delay=0.0,
        clover_rate_limit=16,
        clover_max_concurrent_requests=5,
        clover_request_delay=0.05,
        clover_max_running=100,
        retry_after=1,
    )
    with SandboxServer(cfg) as sb:
        run = run_tap(
            {
                "provider": "clover",
                "api_url": sb.clover_url,
                "access_token": "sandbox-token",
                "merchant_id": "SANDBOXMERCHANT1",
                "region": "sandbox",
                "start_date": START,
                "end_date": "2025-02-01T00:00:00Z",
                "window_days": 2,
                "poll_interval": 0.05,
                "poll_max_interval": 0.5,
                "max_concurrent_exports": 5,
                "export_timeout": 120,
            }
        )
        stats = sb.stats()
    assert run.returncode == 0, run.stderr[-2000:]
    assert stats["exports_created"]["clover"] == 32
    assert stats["429s_sent"] == 0
    assert stats["max_concurrent_clover_requests"] <= 5
