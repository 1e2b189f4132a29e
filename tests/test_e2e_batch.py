"""End to end, BATCH mode: the real CLI against the sandbox, batch files read back.

The files must hold what RECORD messages would have carried (same records, typing,
selection and stream maps; date-times as the same instants), every file must be
announced before the STATE that moves its window's bookmark, and a rerun from that
STATE must add nothing and remove the files the loader has taken.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tests.sandbox_fixtures import account_config
from tests.tap_harness import duplicates, run_tap, utc

pytestmark = pytest.mark.e2e

START, END = "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"
NC_STREAMS = ["orders", "customers"]
DEFINITIONS = {
    "nextcommerce": {d.name: d for d in NEXTCOMMERCE_STREAMS},
    "clover": {d.name: d for d in CLOVER_STREAMS},
}


SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000, retry_after=1)


def config(sandbox, provider: str, root: Path, **overrides) -> dict[str, Any]:
    common = {
        "start_date": START,
        "end_date": END,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "export_timeout": 60,
        "lookback": 0,  # these specs are about exactly-once across runs, not re-reads
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": root.as_uri(), "prefix": "test-"},
            "batch_size": 150,  # several files per window
        },
    }
    if provider == "nextcommerce":
        base = {
            **account_config(sandbox, "nextcommerce"),
            "window_days": 15,
            "max_concurrent_exports": 4,
            "max_requests_per_second": 500,
        }
    else:
        base = {
            **account_config(sandbox, "clover"),
            "max_requests_per_second": 200,
        }
    return {**common, **base, **overrides}


def streams_of(provider: str) -> list[str]:
    return NC_STREAMS if provider == "nextcommerce" else [d.name for d in CLOVER_STREAMS]


def batch_records(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        if m["type"] == "BATCH":
            assert m["encoding"] == {"format": "jsonl", "compression": "gzip"}
            for url in m["manifest"]:
                with gzip.open(Path(url.removeprefix("file://")), "rt", encoding="utf-8") as fh:
                    out.setdefault(m["stream"], []).extend(json.loads(line) for line in fh)
    return out


def keys(records: list[dict[str, Any]], key_properties: list[str]) -> list[Any]:
    return [
        r[key_properties[0]] if len(key_properties) == 1 else tuple(r[k] for k in key_properties)
        for r in records
    ]


def same_instants(record: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A record with its date-times as instants (BATCH files carry them in UTC)."""
    out = dict(record)
    for name, prop in schema["properties"].items():
        if prop.get("format") == "date-time" and isinstance(out.get(name), str):
            out[name] = datetime.fromisoformat(out[name].replace("Z", "+00:00"))
    return out


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
def test_batch_files_hold_exactly_what_record_messages_carry_and_the_ground_truth(
    sandbox, provider, tmp_path
):
    names = streams_of(provider)
    as_records = run_tap({**config(sandbox, provider, tmp_path), "batch_config": None}, streams=names)
    assert as_records.returncode == 0, as_records.stderr[-2000:]
    as_batches = run_tap(config(sandbox, provider, tmp_path), streams=names)
    assert as_batches.returncode == 0, as_batches.stderr[-2000:]
    assert not [m for m in as_batches.messages if m["type"] == "RECORD"]
    got = batch_records(as_batches.messages)
    for name in names:
        d = DEFINITIONS[provider][name]
        expected = sandbox.truth_keys(provider, d.export_type, utc(START), utc(END))
        found = keys(got[name], list(d.primary_keys))
        assert not duplicates(found), name
        assert sorted(map(str, found)) == sorted(map(str, expected)), f"{name}: keys differ from ground truth"
        schema = as_batches.schemas[name]["schema"]
        assert as_batches.schemas[name] == as_records.schemas[name]
        by_key = {str(k): same_instants(r, schema) for k, r in zip(found, got[name], strict=True)}
        for record in as_records.records[name]:
            key = str(keys([record], list(d.primary_keys))[0])
            assert by_key[key] == same_instants(record, schema), f"{name} {key}"
    # the same bookmarks; BATCH entries also name their pipeline (what clean-up may remove)
    batch_state = as_batches.last_state
    pipelines = {p.pop("batch_pipeline") for m in batch_state["bookmarks"].values() for p in m["partitions"]}
    assert len(pipelines) == 1 and batch_state == as_records.last_state


@pytest.mark.parametrize(
    ("inclusive", "header_style"),
    [(True, "snake"), (False, "title")],  # each value of each setting, in two runs
    ids=["date_to-inclusive-snake", "date_to-exclusive-title"],
)
def test_batch_files_hold_boundary_rows_once_under_either_date_to_rule_and_header_style(
    sandbox, tmp_path, inclusive, header_style
):
    """The API's unpublished facts (is date_to inclusive? which header style?) across
    their values, in BATCH mode too: one-day windows, every boundary crossed."""
    sandbox.control(date_to_inclusive=inclusive, header_style=header_style)
    end = "2025-01-08T00:00:00Z"
    run = run_tap(config(sandbox, "nextcommerce", tmp_path, window_days=1, end_date=end), streams=NC_STREAMS)
    assert run.returncode == 0, run.stderr[-2000:]
    got = batch_records(run.messages)
    for name in NC_STREAMS:
        d = DEFINITIONS["nextcommerce"][name]
        expected = sandbox.truth_keys("nextcommerce", d.export_type, utc(START), utc(end))
        found = keys(got[name], list(d.primary_keys))
        assert sorted(map(str, found)) == sorted(map(str, expected)), name


def test_every_file_is_announced_before_the_state_that_moves_its_windows_bookmark(sandbox, tmp_path):
    run = run_tap(config(sandbox, "nextcommerce", tmp_path), streams=NC_STREAMS)
    assert run.returncode == 0, run.stderr[-2000:]
    announced: dict[str, list[str]] = {}
    for m in run.messages:
        if m["type"] == "BATCH":
            announced.setdefault(m["stream"], []).extend(m["manifest"])
        elif m["type"] == "STATE":
            for stream, bookmark in m["value"].get("bookmarks", {}).items():
                end = bookmark["partitions"][0].get("replication_key_value")
                if end is None:  # a STATE that only saves exports in flight moves no bookmark
                    continue
                stamp = utc(end).strftime("%Y%m%dT%H%M%SZ")
                covered = [u for u in announced.get(stream, []) if f"-{stamp}." in u]
                assert covered, f"{stream}: bookmark {end} before any file of its window"
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(Path(u).name for urls in announced.values() for u in urls)  # no partial left
    assert all(oct(os.stat(tmp_path / f).st_mode)[-3:] == "600" for f in files)
    assert sum(len(v) for v in announced.values()) > 2 * 4  # rotated: several files per window


def test_selection_and_stream_maps_shape_batch_files_like_record_messages(sandbox, tmp_path):
    maps = {
        "orders": {"__key_properties__": ["number"], "note": "'copied ' + currency"},
        "orders_slim": {
            "__source__": "orders",
            "__key_properties__": ["number"],
            "__else__": None,
            "number": "number",
        },
    }
    overrides = {"stream_maps": maps}
    catalog_run = run_tap(config(sandbox, "nextcommerce", tmp_path, **overrides), streams=["orders"])
    assert catalog_run.returncode == 0, catalog_run.stderr[-2000:]
    got = batch_records(catalog_run.messages)
    assert set(got) == {"orders", "orders_slim"}
    assert all(r["note"] == f"copied {r['currency']}" for r in got["orders"])
    assert all(set(r) == {"number"} for r in got["orders_slim"])
    assert len(got["orders"]) == len(got["orders_slim"]) > 0


def test_a_rerun_from_the_last_state_adds_nothing_and_removes_the_loaded_files(sandbox, tmp_path):
    first = run_tap(config(sandbox, "nextcommerce", tmp_path), streams=NC_STREAMS)
    assert first.returncode == 0, first.stderr[-2000:]
    assert any(tmp_path.iterdir())
    again = run_tap(config(sandbox, "nextcommerce", tmp_path), streams=NC_STREAMS, state=first.last_state)
    assert again.returncode == 0, again.stderr[-2000:]
    assert [m for m in again.messages if m["type"] == "BATCH"] == []
    assert list(tmp_path.iterdir()) == []
    assert again.last_state == first.last_state


def test_a_failed_window_keeps_its_bookmark_and_the_rerun_completes_the_truth(sandbox, tmp_path):
    sandbox.control(fault_export_failed=1)
    cfg = config(
        sandbox, "nextcommerce", tmp_path, max_concurrent_exports=1, export_attempts=1, min_window_days=365
    )
    failed = run_tap(cfg, streams=["orders"])
    assert failed.returncode != 0
    assert [line for line in failed.stderr.splitlines() if "error:" in line]
    partials = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert partials == []
    sandbox.control(fault_export_failed=0)
    rerun = run_tap(cfg, streams=["orders"], state=failed.last_state)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    d = DEFINITIONS["nextcommerce"]["orders"]
    found = keys(batch_records(failed.messages).get("orders", []), ["number"]) + keys(
        batch_records(rerun.messages)["orders"], ["number"]
    )
    expected = sandbox.truth_keys("nextcommerce", d.export_type, utc(START), utc(END))
    assert sorted(set(map(str, found))) == sorted(map(str, expected))


def test_parquet_for_streams_with_json_objects_is_refused_before_any_output(sandbox, tmp_path, require):
    require.module("pyarrow", "the parquet extra: run `make install`")
    cfg = config(sandbox, "clover", tmp_path)
    cfg["batch_config"]["encoding"] = {"format": "parquet"}
    run = run_tap(cfg, streams=["orders"])
    assert run.returncode == 2
    (line,) = run.error_lines()
    assert "parquet" in line and "jsonl" in line
    assert run.messages == []
