"""The published rate limits, measured: how many 429s does a busy real-size run get?

Runs the tap CLI (defaults for the rate settings: the provider's published limit)
against a sandbox that enforces the published limit as a sliding 1-second window, and
prints what the sandbox counted: 429s sent, requests by kind, exports created, and
(Clover) the most requests it saw in flight at once.

Default run (issue #11): Next Commerce, all 13 streams, ``window_days`` 7 over
2025-01-01..2025-03-01 (9 windows each: 117 exports), no processing delay, 4 requests
per second. ``--provider clover`` runs both Clover streams with 1-day windows (118
exports) against 16 requests per second and 5 in flight.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from commerce_sandbox import SandboxConfig, SandboxServer  # noqa: E402
from tests.tap_harness import run_tap  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("nextcommerce", "clover"), default="nextcommerce")
    parser.add_argument("--window-days", type=float, default=None)
    parser.add_argument("--end", default="2025-03-01T00:00:00Z")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply both limits (quicker runs)")
    args = parser.parse_args()
    nc = args.provider == "nextcommerce"
    window_days = args.window_days or (7 if nc else 1)
    sandbox_cfg = SandboxConfig(
        port=0,
        processing_delay=0.0,
        clover_request_delay=0.02,  # makes the 5-in-flight limit observable
        nc_rate_limit=4.0 * args.scale,
        clover_rate_limit=16.0 * args.scale,
        clover_max_running=1000,
        retry_after=1,
    )
    with SandboxServer(sandbox_cfg) as sb:
        config = {
            "provider": args.provider,
            "access_token": "sandbox-token",
            "start_date": "2025-01-01T00:00:00Z",
            "end_date": args.end,
            "window_days": window_days,
            "poll_interval": 0.05,
            "poll_max_interval": 1,
            "export_timeout": 600,
        }
        if not nc:
            config["max_concurrent_exports"] = 5
        if nc:
            config.update(api_url=sb.api_url, store="demo-store")
        else:
            config.update(api_url=sb.clover_url, merchant_id="SANDBOXMERCHANT1", region="sandbox")
        if args.scale != 1.0:
            config["max_requests_per_second"] = (4.0 if nc else 16.0) * args.scale
        began = time.monotonic()
        run = run_tap(config, timeout=3600)
        seconds = time.monotonic() - began
        stats = sb.stats()
    result = {
        "provider": args.provider,
        "exit": run.returncode,
        "seconds": round(seconds, 1),
        "exports_created": stats["exports_created"][args.provider],
        "429s_sent": stats["429s_sent"],
        "requests": {k: v for k, v in stats["requests"].items() if not k.startswith("control")},
        "max_concurrent_clover_requests": stats["max_concurrent_clover_requests"],
    }
    print(json.dumps(result, indent=2))
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
