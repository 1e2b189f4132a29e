"""The tap across the values of facts the providers do not publish (real tap process).

The contract leaves some answers open; the sandbox has a setting for each
(``sandbox/config.py`` lists them). Those not run across elsewhere are run here:

* the time zone of the Next Commerce list filter's ``YYYY-MM-DD`` day (UTC, or the
  store's zone, from UTC-12 to UTC+14): a create whose answer was lost is still found
  in the list, so no window gets a second export;
* the status word of a failed export (none published for Next Commerce; Clover's
  "anything else"): the failed export is replaced and every record arrives once;
* what the file host answers for an expired signed URL (403, 404 or 410): the tap asks
  for a fresh URL and every record arrives once.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import count

import pytest

from tap_commerce_exports.windows import iso_z
from tests.tap_harness import utc
from tests.test_interruption import (
    clover_config,
    nc_config,
    record_key,
    run_attempt,
    truth_for,
    write_catalog,
)

pytestmark = pytest.mark.e2e

#: Each run gets six days of its own: Next Commerce would otherwise find another run's
#: exports of the same windows in its list (that is the point of the list).
_SLOTS = count()


SANDBOX_SETTINGS = dict(
    processing_delay=0.2,
    nc_rate_limit=1000,
    clover_rate_limit=1000,
    clover_max_running=4,
    rows_per_day={"order_list": 15, "ORDERS": 15},
    data_end="2026-01-01T00:00:00Z",
)


def sync(sandbox, tmp_path, provider: str, **sandbox_settings):
    """One run over two 3-day windows of ``orders`` with ``sandbox_settings`` on; checks
    the records equal the truth exactly; returns (run, stats)."""
    make = nc_config if provider == "nextcommerce" else clover_config
    start = utc("2025-01-01T00:00:00Z") + timedelta(days=6 * next(_SLOTS))
    config = make(sandbox, start_date=iso_z(start), end_date=iso_z(start + timedelta(days=6)))
    catalog = write_catalog(config, ["orders"], tmp_path / "catalog.json")
    sandbox.control(reset_stats=True, **sandbox_settings)
    try:
        run = run_attempt(config, catalog, None, None, tmp_path / "run")
        stats = sandbox.stats()
    finally:
        sandbox.control(
            complete_exports=True,
            fault_create_answer_lost=0,
            fault_export_failed=0,
            fault_expired_url=False,
            nc_list_day_offset=0,
            nc_failed_status="failed",
            clover_failed_status="FAILED",
            file_expired_status=403,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    truth = truth_for(sandbox, provider, ["orders"], config["start_date"], config["end_date"])
    keys = Counter(record_key(provider, "orders", r) for r in run.records["orders"])
    assert sorted(keys) == sorted(truth["orders"]) and truth["orders"], "records lost or extra"
    assert max(keys.values()) == 1, "duplicates"
    return run, stats


@pytest.mark.parametrize("offset", [-720, -300, 0, 330, 840], ids=lambda m: f"utc{m / 60:+g}h")
def test_a_lost_create_is_found_whatever_time_zone_the_list_filters_day_is_in(sandbox, tmp_path, offset):
    run, stats = sync(
        sandbox, tmp_path, "nextcommerce", nc_list_day_offset=offset, fault_create_answer_lost=2
    )
    assert stats["create_answers_lost"] == 2
    assert stats["exports_created"]["nextcommerce"] == 2, "each window has one export, none twice"
    assert run.stderr.count("got no answer (POST") == 2


@pytest.mark.parametrize(
    ("provider", "setting", "word"),
    [
        ("nextcommerce", "nc_failed_status", "failed"),
        ("nextcommerce", "nc_failed_status", "error"),
        ("nextcommerce", "nc_failed_status", "cancelled"),
        ("clover", "clover_failed_status", "FAILED"),
        ("clover", "clover_failed_status", "ERROR"),
    ],
)
def test_a_failed_export_is_replaced_whatever_word_its_status_is(sandbox, tmp_path, provider, setting, word):
    run, stats = sync(sandbox, tmp_path, provider, fault_export_failed=1, **{setting: word})
    assert stats["exports_failed"] == 1
    assert stats["exports_created"][provider] == 3, "two windows and one replacement"
    assert word in run.stderr, "the failure names the status it saw"


@pytest.mark.parametrize("status", [403, 404, 410])
@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_an_expired_file_url_is_renewed_whatever_the_file_host_answers(sandbox, tmp_path, provider, status):
    _, stats = sync(sandbox, tmp_path, provider, fault_expired_url=True, file_expired_status=status)
    assert stats["expired_url_answers"] >= 2, "each window's first download was refused"
