"""Next Commerce webhooks wake the tap's waiting exports, however the delivery names its store.

How a webhook names its store is not published (a subdomain, or the store's host): the
sandbox varies it (``webhook_store_form``), and each form must wake the tap long before
its next status check would have found the export ready: that check would come after an
hour (``poll_interval``), so a run that ends within its bound (``HANG``) was woken.
"""

from __future__ import annotations

import socket

import pytest

from tests.tap_harness import run_tap

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret"
#: Seconds between status checks: no check but the first comes within a run.
NO_POLL = 3600
#: Seconds a run may take before it is called hung (a bound on a hang, not a goal).
HANG = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("store_form", ["subdomain", "host"])
def test_a_webhook_wakes_the_waiting_export_whatever_form_its_store_name_takes(store_form: str) -> None:
    from commerce_sandbox import SandboxConfig, SandboxServer

    port = free_port()
    with SandboxServer(
        SandboxConfig(
            port=0,
            processing_delay=1.0,
            nc_rate_limit=1000,
            webhook_url=f"http://127.0.0.1:{port}/",
            webhook_secret=SECRET,
            webhook_store_form=store_form,
        )
    ) as sandbox:
        config = {
            "provider": "nextcommerce",
            "api_url": sandbox.api_url,
            "store": "demo-store",
            "access_token": "sandbox-token",
            "start_date": "2025-01-01T00:00:00Z",
            "end_date": "2025-01-11T00:00:00Z",
            "window_days": 10,
            "lookback": 0,
            # Without the webhook the next check comes after an hour: only a wake-up ends the run.
            "poll_interval": NO_POLL,
            "poll_max_interval": NO_POLL,
            "webhook_listen": f"127.0.0.1:{port}",
            "webhook_secret": SECRET,
        }
        run = run_tap(config, streams=["orders"], timeout=HANG)
        assert run.returncode == 0, run.stderr[-2000:]
        assert sandbox.stats()["webhooks_sent"] >= 1
        assert run.stderr.count("webhook: export ") == 1
        assert run.records["orders"], "the export's records were emitted"


@pytest.mark.parametrize("store_form", ["subdomain", "host"])
def test_in_a_many_store_run_each_store_s_webhook_with_its_own_secret_wakes_its_own_export(
    store_form: str,
) -> None:
    from commerce_sandbox import SandboxConfig, SandboxServer
    from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
    from tests.tap_harness import utc

    port = free_port()
    stores = ["store-1", "store-2"]
    url = f"http://127.0.0.1:{port}/"
    with SandboxServer(
        SandboxConfig(
            port=0,
            processing_delay=1.0,
            nc_rate_limit=1000,
            webhook_store_form=store_form,
            accounts=[
                {"store": s, "token": f"token-{s}", "webhook_url": url, "webhook_secret": f"secret-{s}"}
                for s in stores
            ],
        )
    ) as sandbox:
        config = {
            "provider": "nextcommerce",
            "start_date": "2025-01-01T00:00:00Z",
            "end_date": "2025-01-11T00:00:00Z",
            "window_days": 10,
            "lookback": 0,
            "poll_interval": NO_POLL,  # without the webhooks the next check comes after an hour
            "poll_max_interval": NO_POLL,
            "webhook_listen": f"127.0.0.1:{port}",
            "accounts": [
                {
                    "store": s,
                    "api_url": sandbox.store_url(s),
                    "access_token": f"token-{s}",
                    "webhook_secret": f"secret-{s}",
                }
                for s in stores
            ],
        }
        run = run_tap(config, streams=["orders"], timeout=HANG)
        assert run.returncode == 0, run.stderr[-2000:]
        # both deliveries accepted; the log says so once per minute, with a count
        assert sandbox.stats().get("webhook_answer_200", 0) == 2
        assert run.stderr.count("webhook: export ") == 1
        for s in stores:
            expected = sandbox.truth_keys(
                "nextcommerce", "order_list", utc(config["start_date"]), utc(config["end_date"]), account=s
            )
            assert sorted(r["number"] for r in run.records["orders"] if r[ACCOUNT_PROPERTY] == s) == sorted(
                expected
            )
        assert sandbox.stats()["webhooks_sent"] >= 2
