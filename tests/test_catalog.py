"""The discovered catalog says what a sync does: incremental, on the record's creation time.

Targets and tools (Meltano's `select --list`, catalog editors, loaders that keep a
replication column) read the catalog, not our code: a stream that syncs by window and keeps
bookmarks must not be declared FULL_TABLE, and its replication key must be a property every
record carries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tap_commerce_exports.providers.registry import PROVIDERS
from tap_commerce_exports.tap import TapCommerceExports

CONFIGS = {
    "nextcommerce": {"provider": "nextcommerce", "store": "demo-store"},
    "clover": {"provider": "clover", "merchant_id": "MID1", "region": "sandbox"},
}


def discovered(provider: str) -> dict[str, dict]:
    """{stream: catalog entry} of `--discover`, run as a user runs it (no network is used)."""
    config = {"access_token": "tok-123456", "start_date": "2025-01-01", **CONFIGS[provider]}
    tap = TapCommerceExports(config=config, parse_env_config=False)
    return {entry["tap_stream_id"]: entry for entry in tap.catalog_dict["streams"]}


def root_metadata(entry: dict) -> dict:
    (root,) = [m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == []]
    return root


def property_metadata(entry: dict, name: str) -> dict:
    (meta,) = [m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == ["properties", name]]
    return meta


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_discovered_stream_is_incremental_on_its_window_field(provider):
    catalog = discovered(provider)
    assert set(catalog) == {d.name for d in PROVIDERS[provider].streams}
    for definition in PROVIDERS[provider].streams:
        entry = catalog[definition.name]
        root = root_metadata(entry)
        assert entry["replication_method"] == "INCREMENTAL", definition.name
        assert entry["replication_key"] == definition.window_field, definition.name
        assert root["forced-replication-method"] == "INCREMENTAL", definition.name
        assert root["replication-key"] == definition.window_field, definition.name
        assert root["valid-replication-keys"] == [definition.window_field], definition.name


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_replication_key_is_in_the_schema_and_cannot_be_deselected(provider):
    for definition in PROVIDERS[provider].streams:
        entry = discovered(provider)[definition.name]
        assert definition.window_field in entry["schema"]["properties"], definition.name
        assert property_metadata(entry, definition.window_field)["inclusion"] == "automatic"
        for key in definition.primary_keys:
            assert property_metadata(entry, key)["inclusion"] == "automatic"


def test_the_discover_command_prints_the_same_declarations(tmp_path):
    """Through the real entry point, the way Meltano calls it (`--config ... --discover`)."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"access_token": "tok-123456", "start_date": "2025-01-01", "store": "demo-store"})
    )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "tap-commerce-exports"), "--config", str(config), "--discover"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    streams = {s["tap_stream_id"]: s for s in json.loads(out)["streams"]}
    assert streams["orders"]["replication_method"] == "INCREMENTAL"
    assert root_metadata(streams["orders"])["replication-key"] == "created_at"
    assert root_metadata(streams["customers"])["replication-key"] == "date_joined"


def test_a_catalog_given_back_to_the_tap_keeps_method_and_key():
    """Meltano hands the discovered catalog (with its selection) back with `--catalog`."""
    config = {"access_token": "tok-123456", "start_date": "2025-01-01", "store": "demo-store"}
    catalog = TapCommerceExports(config=config, parse_env_config=False).catalog_dict
    tap = TapCommerceExports(config=config, catalog=catalog, parse_env_config=False)
    orders = tap.streams["orders"]
    assert (orders.replication_method, orders.replication_key) == ("INCREMENTAL", "created_at")


def test_a_catalog_asking_for_full_table_gets_a_warning_and_the_incremental_sync(caplog):
    """Meltano's `metadata` extra can rewrite the catalog; the engine syncs by window
    whatever it says, so the tap says so instead of silently ignoring it."""
    config = {"access_token": "tok-123456", "start_date": "2025-01-01", "store": "demo-store"}
    catalog = TapCommerceExports(config=config, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "orders":
            entry["replication_method"] = "FULL_TABLE"
            entry["replication_key"] = None
            root_metadata(entry).pop("replication-key", None)
            root_metadata(entry)["forced-replication-method"] = "FULL_TABLE"
    with caplog.at_level("WARNING", logger="tap_commerce_exports.streams"):
        tap = TapCommerceExports(config=config, catalog=catalog, parse_env_config=False)
    orders = tap.streams["orders"]
    assert (orders.replication_method, orders.replication_key) == ("INCREMENTAL", "created_at")
    warnings = [r.getMessage() for r in caplog.records if "catalog asks" in r.getMessage()]
    assert len(warnings) == 1 and "stream 'orders'" in warnings[0] and "FULL_TABLE" in warnings[0]
