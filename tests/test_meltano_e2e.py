"""End to end through real Meltano: the sandbox -> tap -> target-duckdb -> a DuckDB file.

Real `meltano run` (this repo's meltano.yml, `dev` environment), real target-duckdb
(pinned as in meltano.yml), a real DuckDB file, the sandbox in-process. Each test run
has its own Meltano system directory (state, logs) in a temporary folder; the plugin
virtualenvs installed by `make install` are reused. The sandbox's addresses and the
fast polling settings reach the extractors the way a user's would: Meltano's
`<PLUGIN_NAME>_<SETTING>` environment variables.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import pytest
import yaml

from tap_commerce_exports.providers.clover_streams import CLOVER_STREAMS
from tap_commerce_exports.providers.nextcommerce_streams import NEXTCOMMERCE_STREAMS
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tests.meltano_helpers import (
    CLOVER_EXTRACTOR,
    NC_EXTRACTOR,
    REPO,
    IsolatedMeltano,
    as_key_tuples,
    bookmark_values,
    missing_install,
    plugin_env,
    read_warehouse,
    table_keys,
)

pytestmark = pytest.mark.meltano

UTC = timezone.utc
START = "2025-01-01T00:00:00Z"
END_1 = "2025-03-01T00:00:00Z"  # the sandbox's default data_end
END_2 = "2025-03-15T00:00:00Z"  # after sb.control(data_end=END_2)

#: (provider, DuckDB schema = the extractor's load_schema, extractor, stream definitions)
PROVIDERS = (
    ("nextcommerce", "nextcommerce", NC_EXTRACTOR, NEXTCOMMERCE_STREAMS),
    ("clover", "clover", CLOVER_EXTRACTOR, CLOVER_STREAMS),
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture(scope="module")
def sandbox():
    from commerce_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05, nc_rate_limit=50)) as sb:
        yield sb


def extractor_settings(sandbox, end: str) -> dict[str, str]:
    """Env for both extractors: the in-process sandbox, the range, fast polling."""
    common = {
        "access_token": "sandbox-token",
        "start_date": START,
        "end_date": end,
        # whole numbers: Meltano takes no fractions from the environment (see meltano.yml)
        "poll_interval": 1,
        "poll_max_interval": 2,
        "export_timeout": 120,
    }
    env = plugin_env(
        NC_EXTRACTOR,
        {
            **common,
            "provider": "nextcommerce",
            "api_url": sandbox.api_url,
            "store": "demo-store",
            "max_concurrent_exports": 13,
            "max_requests_per_second": 40,
        },
    )
    env.update(
        plugin_env(
            CLOVER_EXTRACTOR,
            {
                **common,
                "provider": "clover",
                "api_url": sandbox.clover_url,
                "merchant_id": "SANDBOXMERCHANT1",
                "region": "sandbox",
                "max_concurrent_exports": 2,
                "max_requests_per_second": 12,
            },
        )
    )
    return env


def meltano_run(meltano: IsolatedMeltano, sandbox, end: str):
    meltano.extra_env = extractor_settings(sandbox, end)
    result = meltano.run("run", NC_EXTRACTOR, "target-duckdb", CLOVER_EXTRACTOR, "target-duckdb")
    assert result.returncode == 0, f"meltano run failed:\n{result.tail()}"
    return result


def expected_keys(sandbox, provider, definition, start: str, end: str) -> list[tuple[str, ...]]:
    return as_key_tuples(sandbox.truth_keys(provider, definition.export_type, utc(start), utc(end)))


def assert_warehouse_is_ground_truth(meltano: IsolatedMeltano, sandbox, end: str) -> dict:
    """Every stream's table holds exactly the sandbox's rows of [START, end), once each."""
    tables = read_warehouse(meltano.warehouse)
    counts = {}
    for provider, schema, _extractor, definitions in PROVIDERS:
        for d in definitions:
            expected = expected_keys(sandbox, provider, d, START, end)
            table = d.name.replace("-", "_").lower()
            if (schema, table) not in tables:
                assert not expected, f"{schema}.{table}: no table, but the sandbox has {len(expected)} rows"
                counts[(schema, table)] = 0
                continue
            info = tables[(schema, table)]
            key = [ACCOUNT_PROPERTY, *d.primary_keys]  # every record says whose it is
            assert [c.lower() for c in info["key"]] == [k.lower() for k in key], (
                f"{schema}.{table}: key {info['key']} != {key}"
            )
            got = table_keys(meltano.warehouse, schema, table, d.primary_keys)
            dups = [k for k, n in Counter(got).items() if n > 1]
            assert not dups, f"{schema}.{table}: duplicate keys {dups[:5]}"
            assert len(got) == len(expected), (
                f"{schema}.{table}: {len(got)} rows, sandbox has {len(expected)}"
            )
            missing = set(expected) - set(got)
            extra = set(got) - set(expected)
            assert not missing and not extra, (
                f"{schema}.{table}: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
                f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})"
            )
            counts[(schema, table)] = len(got)
    unexpected = set(tables) - set(counts)
    assert not unexpected, f"tables nobody expects: {sorted(unexpected)}"
    return counts


#: The tap's settings, by their fixed names.
TAP_SETTINGS = (
    "provider",
    "access_token",
    "sandbox_token",
    "store",
    "merchant_id",
    "region",
    "api_url",
    "api_version",
    "start_date",
    "end_date",
    "window_days",
    "lookback",
    "window_columns",
    "poll_interval",
    "poll_max_interval",
    "export_timeout",
    "max_concurrent_exports",
    "max_requests_per_second",
    "outside_hours",
    "on_invalid_record",
    "rejects_dir",
    "webhook_listen",
    "webhook_secret",
)


def _sdk_builtin_settings() -> set[str]:
    """Settings the Singer SDK adds for its capabilities (stream maps, flattening, ...)."""
    from singer_sdk.helpers import capabilities

    names = {"faker_config"}
    for schema in (
        capabilities.STREAM_MAPS_CONFIG,
        capabilities.FLATTENING_CONFIG,
        capabilities.BATCH_CONFIG,
    ):
        names |= set(schema["properties"])
    return names


def test_meltano_yml_declares_every_tap_setting_with_a_kind():
    from tap_commerce_exports.settings import CONFIG_SCHEMA

    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == NC_EXTRACTOR]
    declared = {s["name"]: s for s in tap["settings"]}
    own = {n: p for n, p in CONFIG_SCHEMA["properties"].items() if n not in _sdk_builtin_settings()}
    missing = (set(own) | set(TAP_SETTINGS)) - set(declared)
    assert not missing, f"meltano.yml lacks settings {sorted(missing)}"
    assert all(s.get("kind") for s in declared.values()), "every setting needs a kind"
    decimal = [n for n, s in declared.items() if s["kind"] == "decimal"]
    assert not decimal, f"{decimal}: Meltano 4.4.1 cannot pass a `decimal` set by env var (see meltano.yml)"
    assert all(s.get("description") for s in declared.values()), "every setting needs a description"
    for name, prop in own.items():
        assert bool(declared[name].get("sensitive")) == bool(prop.get("secret")), (
            f"{name}: sensitive in meltano.yml must match secret in the tap"
        )
    assert tap["namespace"] == "tap_commerce_exports"
    assert set(tap["capabilities"]) >= {"catalog", "discover", "about", "state", "stream-maps"}


def test_numeric_settings_reach_the_tap_as_text_so_the_tap_checks_them():
    """Meltano 4.4.1 casts an `integer` setting from the environment with int() (a fraction
    ends in its ValueError traceback) and cannot pass a `decimal` one at all: numbers are
    `kind: string`, and the tap parses them, naming the setting when one is wrong."""
    from tap_commerce_exports.settings import CONFIG_SCHEMA

    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == NC_EXTRACTOR]
    kinds = {s["name"]: s["kind"] for s in tap["settings"]}
    numeric = [
        name
        for name, prop in CONFIG_SCHEMA["properties"].items()
        if {"number", "integer"} & set(prop.get("type") or []) and name in kinds
    ]
    assert numeric, "no numeric setting found"
    assert {n: kinds[n] for n in numeric} == dict.fromkeys(numeric, "string")


def test_every_plugin_installs_from_a_committed_lock():
    """Meltano's plugin venvs run what the tests ran: each pip_url pins its package (or is a
    distribution of this repository: ``-e .`` the tap, ``-e ./loader`` the DuckDB loader)
    and names a constraints file under requirements/ that exists in the repository."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    plugins = project["plugins"]["extractors"] + project["plugins"]["loaders"]
    for plugin in plugins:
        if "inherit_from" in plugin:
            continue
        words = plugin["pip_url"].split()
        assert words[0] == "-e" and words[1] in (".", "./loader") or "==" in words[0], plugin["name"]
        constraints = words[words.index("-c") + 1]
        assert constraints.startswith("${MELTANO_PROJECT_ROOT}/requirements/"), plugin["name"]
        path = REPO / constraints.replace("${MELTANO_PROJECT_ROOT}/", "")
        assert path.is_file(), f"{plugin['name']}: {path} is missing (make lock)"


def test_dev_environment_resolves_each_extractor_to_its_provider(tmp_path, require):
    require(missing_install())
    meltano = IsolatedMeltano(tmp_path)
    # (each extractor's load_schema, hence its DuckDB schema, is checked by the e2e test)
    for extractor, provider in ((NC_EXTRACTOR, "nextcommerce"), (CLOVER_EXTRACTOR, "clover")):
        result = meltano.run("--log-level=error", "config", "print", extractor, "--format", "json")
        assert result.returncode == 0, result.tail()
        config = json.loads(result.output[result.output.index("{") :])
        assert config["provider"] == provider, config
        assert config["start_date"] and config["api_url"].startswith("http://127.0.0.1:8000")
        # the sandbox's own token, never access_token (see tests/test_meltano_user_path.py)
        assert config["sandbox_token"] == "sandbox-token" and not config.get("access_token")


def test_clover_extractor_never_inherits_next_commerce_credentials_or_limits(tmp_path, require):
    require(missing_install())
    meltano = IsolatedMeltano(tmp_path, environment="prod")
    meltano.extra_env = plugin_env(
        NC_EXTRACTOR,
        {
            "access_token": "nc-secret",
            "api_url": "https://nc.example/api/admin/",
            "store": "shop",
            "window_days": 60,
            "max_concurrent_exports": 8,
            "max_requests_per_second": 3,
            "start_date": "2025-01-01",
        },
    )
    result = meltano.run(
        "--log-level=error", "config", "--unsafe", "print", CLOVER_EXTRACTOR, "--format", "json"
    )
    assert result.returncode == 0, result.tail()
    config = json.loads(result.output[result.output.index("{") :])
    assert config["provider"] == "clover"
    assert not config.get("access_token") and not config.get("api_url") and not config.get("store")
    assert (config["window_days"], config["max_concurrent_exports"], config["max_requests_per_second"]) == (
        30,
        1,
        16,
    )
    assert config["start_date"] == "2025-01-01"  # shared on purpose


def test_meltano_run_loads_the_ground_truth_once_and_state_makes_reruns_incremental(
    sandbox, tmp_path, require
):
    require(missing_install())
    meltano = IsolatedMeltano(tmp_path)

    # 1. Full load of both providers: every table equals the sandbox's ground truth.
    meltano_run(meltano, sandbox, END_1)
    first = assert_warehouse_is_ground_truth(meltano, sandbox, END_1)
    assert sum(first.values()) > 0
    assert_bookmarks(meltano, END_1)

    # 2. Same range again: Meltano hands the tap its bookmarks; only the lookback (7 days
    # before each bookmark, the default) is read again, in one export per stream, and the
    # loader's upsert keeps one copy of each row: nothing new, nothing twice.
    exports_before = _exports_created(sandbox)
    meltano_run(meltano, sandbox, END_1)
    second = assert_warehouse_is_ground_truth(meltano, sandbox, END_1)
    assert second == first
    streams = sum(len(definitions) for *_, definitions in PROVIDERS)
    assert _exports_created(sandbox) - exports_before == streams, "one lookback export per stream"

    # 3. New data after the old end, and a later end_date: exactly the new rows arrive.
    sandbox.control(data_end=END_2)
    meltano_run(meltano, sandbox, END_2)
    third = assert_warehouse_is_ground_truth(meltano, sandbox, END_2)
    for provider, schema, _extractor, definitions in PROVIDERS:
        for d in definitions:
            table = d.name.replace("-", "_").lower()
            new = expected_keys(sandbox, provider, d, END_1, END_2)
            assert third[(schema, table)] - first[(schema, table)] == len(new), f"{schema}.{table}"
    assert sum(third.values()) > sum(first.values())
    assert_bookmarks(meltano, END_2)


def assert_bookmarks(meltano: IsolatedMeltano, end: str) -> None:
    """Meltano's system database holds, per extractor, every stream's bookmark at `end`."""
    states = meltano.states()
    for _provider, _schema, extractor, definitions in PROVIDERS:
        state_id = f"dev:{extractor}-to-target-duckdb"
        assert state_id in states, f"no state {state_id}: {sorted(states)}"
        bookmarks = bookmark_values(states[state_id].get("singer_state", {}))
        for d in definitions:
            assert bookmarks.get(d.name) == {end}, f"{state_id} {d.name}: {bookmarks.get(d.name)}"


def _exports_created(sandbox) -> int:
    """Exports the sandbox has created so far (both providers)."""
    return sum(sandbox.stats()["exports_created"].values())
