"""Catalog selection, stream maps and flattening on the fast path, against the SDK's path.

The tap's regular run (``ExportSync.run``) writes records without singer-sdk's
per-record message path. For the same catalog, stream maps and flattening settings it
must emit what singer-sdk's own path (``Tap.sync_all`` -> ``Stream.sync`` ->
``get_records``) emits: the same SCHEMA per output stream and the same records, in order.
Both run as real processes against the sandbox.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from singer_sdk.helpers._catalog import get_selected_schema, pop_deselected_record_properties
from singer_sdk.singerlib import SelectionMask

from tap_commerce_exports.singer.selection import deselected_paths, record_pruner, selected_schema
from tests.sandbox_fixtures import account_config
from tests.tap_harness import discover

# --- the pruning rules, against singer-sdk's own helpers ------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "note": {"type": ["string", "null"]},
        "employee": {
            "type": ["object", "null"],
            "required": ["name"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
        },
        "lineItems": {
            "type": ["array", "null"],
            "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        },
    },
}


def mask_of(**deselected: bool) -> SelectionMask:
    mask = SelectionMask({(): True})
    for dotted, selected in deselected.items():
        crumb: tuple[str, ...] = ()
        for name in dotted.split("__"):
            crumb += ("properties", name)
        mask[crumb] = selected
    return mask


MASKS = {
    "nothing": mask_of(),
    "nested": mask_of(employee__name=False),
    "top-level": mask_of(note=False),
    "whole-object": mask_of(employee=False, employee__id=False, employee__name=False),
    "inside-an-array": SelectionMask(
        {(): True, ("properties", "lineItems", "items", "properties", "name"): False}
    ),
}


@pytest.mark.parametrize("mask", MASKS.values(), ids=MASKS.keys())
def test_pruning_removes_what_the_sdk_removes_from_schema_and_record(mask):
    record = {
        "id": "A",
        "note": "n",
        "employee": {"id": "E", "name": "Ann", "extra": 1},
        "lineItems": [{"name": "tee"}],
        "unknown": {"name": "kept"},
    }
    paths = deselected_paths(mask)
    assert selected_schema(SCHEMA, paths) == get_selected_schema("orders", SCHEMA, mask)
    ours, sdks = copy.deepcopy(record), copy.deepcopy(record)
    prune = record_pruner(paths)
    if prune is not None:
        prune(ours)
    pop_deselected_record_properties(sdks, SCHEMA, mask)
    assert ours == sdks


def test_nothing_deselected_costs_nothing_per_record():
    assert record_pruner(deselected_paths(MASKS["nothing"])) is None
    assert deselected_paths(MASKS["whole-object"]) == (("employee",),)


# --- both paths end to end ------------------------------------------------------------

SDK_PATH = """
import json, sys
from singer_sdk import Tap
from tap_commerce_exports.tap import TapCommerceExports
config, catalog = (json.load(open(p)) for p in sys.argv[1:3])
tap = TapCommerceExports(config=config, catalog=catalog)
Tap.sync_all(tap)  # singer-sdk's own per-stream, per-record path
"""


SANDBOX_SETTINGS = dict(processing_delay=0.05, nc_rate_limit=1000, clover_rate_limit=1000)


def base_config(sandbox, provider: str) -> dict[str, Any]:
    return {
        **account_config(sandbox, provider),
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-04T00:00:00Z",
        "window_days": 2,
        "poll_interval": 0.02,
        "poll_max_interval": 0.2,
        "max_requests_per_second": 200,
        "export_timeout": 60,
    }


def catalog_for(config: dict[str, Any], stream: str, deselect: list[str]) -> dict[str, Any]:
    """The discovered catalog with only ``stream`` selected and ``deselect`` (dotted) not."""
    catalog = discover(config)
    for entry in catalog["streams"]:
        for md in entry["metadata"]:
            if md["breadcrumb"] == []:
                md["metadata"]["selected"] = entry["tap_stream_id"] == stream
        if entry["tap_stream_id"] == stream:
            for dotted in deselect:
                crumb = [part for name in dotted.split(".") for part in ("properties", name)]
                found = [md for md in entry["metadata"] if md["breadcrumb"] == crumb]
                if found:
                    found[0]["metadata"]["selected"] = False
                else:
                    entry["metadata"].append({"breadcrumb": crumb, "metadata": {"selected": False}})
    return catalog


def run_path(config: dict[str, Any], catalog: dict[str, Any], *, sdk: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg, cat = Path(tmp) / "config.json", Path(tmp) / "catalog.json"
        cfg.write_text(json.dumps(config))
        cat.write_text(json.dumps(catalog))
        if sdk:
            cmd = [sys.executable, "-c", SDK_PATH, str(cfg), str(cat)]
        else:
            cmd = [sys.executable, "-m", "tap_commerce_exports", "--config", str(cfg), "--catalog", str(cat)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def outputs(messages: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """(last SCHEMA per output stream, records per output stream in order)."""
    schemas: dict[str, Any] = {}
    records: dict[str, list[Any]] = {}
    for m in messages:
        if m["type"] == "SCHEMA":
            schemas[m["stream"]] = (m["schema"], m["key_properties"])
        elif m["type"] == "RECORD":
            records.setdefault(m["stream"], []).append(m["record"])
    return schemas, records


CASES = {
    "clover-nested-deselection": ("clover", "orders", ["employee.name", "note"], {}),
    "clover-maps-and-flattening": (
        "clover",
        "orders",
        ["employee.name"],
        {
            "stream_maps": {
                "orders": {"total_dollars": "total / 100", "__filter__": "total > 500"},
                "order_ids": {
                    "__source__": "orders",
                    "__key_properties__": ["id"],
                    "__else__": None,
                    "id": "id",
                },
            },
            "flattening_enabled": True,
            "flattening_max_depth": 1,
        },
    ),
    "nextcommerce-deselection-and-alias": (
        "nextcommerce",
        "orders",
        ["total_tax", "gift_message"],
        {"stream_maps": {"orders": {"__alias__": "nc_orders", "currency_lower": "currency.lower()"}}},
    ),
    "nextcommerce-flattening": (
        "nextcommerce",
        "customers",
        [],
        {"flattening_enabled": True, "flattening_max_depth": 2},
    ),
}


@pytest.mark.e2e
@pytest.mark.parametrize(("provider", "stream", "deselect", "extra"), CASES.values(), ids=CASES.keys())
def test_the_fast_path_emits_what_the_sdk_path_emits(sandbox, provider, stream, deselect, extra):
    config = {**base_config(sandbox, provider), **extra}
    catalog = catalog_for(base_config(sandbox, provider), stream, deselect)

    fast_schemas, fast_records = outputs(run_path(config, catalog, sdk=False))
    sdk_schemas, sdk_records = outputs(run_path(config, catalog, sdk=True))

    assert fast_records and sum(map(len, fast_records.values())) > 20
    assert set(fast_schemas) == set(sdk_schemas)
    for name, (schema, keys) in sdk_schemas.items():
        assert fast_schemas[name] == (schema, keys), f"SCHEMA of '{name}' differs from the SDK path's"
    assert fast_records == sdk_records
    for dotted in deselect:
        head, _, tail = dotted.partition(".")
        for records in fast_records.values():
            for record in records:
                node = record.get(head) if tail else record
                assert not isinstance(node, dict) or (tail or head) not in node, f"{dotted} was deselected"


@pytest.mark.e2e
def test_deselecting_clover_employee_name_removes_it_from_schema_and_records(sandbox):
    config = base_config(sandbox, "clover")
    catalog = catalog_for(config, "orders", ["employee.name"])

    schemas, records = outputs(run_path(config, catalog, sdk=False))

    employee = schemas["orders"][0]["properties"]["employee"]
    assert set(employee["properties"]) == {"id", "role"}
    with_employee = [r["employee"] for r in records["orders"] if r.get("employee")]
    assert with_employee and all("name" not in e and "id" in e for e in with_employee)
