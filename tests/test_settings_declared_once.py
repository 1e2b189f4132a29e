"""Each setting is declared once (``config/declarations.py``); everything that states a
setting's default, kind, label or secrecy is generated from that declaration or checked
against it here: the JSON schema, the parser, the download limits, meltano.yml, the README.

Why: a default written twice drifts (``max_download_file_mb`` once had six copies), and a
user reads the README and Meltano, not the parser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_commerce_exports.config.declarations import Setting, declared
from tap_commerce_exports.config.run_settings import Settings
from tap_commerce_exports.http.download import MIB, DownloadLimits
from tap_commerce_exports.providers.registry import PROVIDER_CLASSES
from tap_commerce_exports.settings import CONFIG_SCHEMA, load_settings

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
DECLARED = declared(c.settings_properties for c in PROVIDER_CLASSES.values())
#: The setting that names each provider's account (the minimal config sets it).
ACCOUNT_KEY = {"nextcommerce": "store", "clover": "merchant_id"}

#: Declared setting -> how the parsed settings hold it, in the declaration's unit.
PARSED: dict[str, Callable[[Settings], Any]] = {
    "provider": lambda s: s.provider,
    "api_version": lambda s: s.api_version,
    "region": lambda s: s.region,
    "lookback": lambda s: s.lookback / timedelta(days=1),
    "poll_interval": lambda s: s.poll_interval,
    "poll_max_interval": lambda s: s.poll_max_interval,
    "export_timeout": lambda s: s.export_timeout,
    "export_attempts": lambda s: s.export_attempts,
    "min_window_days": lambda s: s.min_split_window / timedelta(days=1),
    "outside_hours": lambda s: s.outside_hours,
    "on_invalid_record": lambda s: s.on_invalid_record,
    "rejects_dir": lambda s: str(s.rejects_dir),
    "max_download_file_mb": lambda s: s.max_download_file_mb,
    "max_download_export_mb": lambda s: s.max_download_export_mb,
    "max_decompression_ratio": lambda s: s.max_decompression_ratio,
    "download_timeout": lambda s: s.download_timeout,
}


def _with_defaults() -> list[Setting]:
    return [s for s in DECLARED.values() if s.default is not None]


def _declared_by(name: str) -> set[str]:
    """The providers that read setting ``name`` (all, for a shared one)."""
    owners = {p for p, c in PROVIDER_CLASSES.items() if any(s.name == name for s in c.settings_properties)}
    return owners or set(PROVIDER_CLASSES)


def test_every_declared_default_is_one_the_parser_is_checked_to_apply():
    assert sorted(s.name for s in _with_defaults() if s.name != "provider") == sorted(
        set(PARSED) - {"provider"}
    )


@pytest.mark.parametrize("provider", sorted(PROVIDER_CLASSES))
def test_the_parser_applies_each_declared_default_of_a_provider(provider: str):
    config = {
        "provider": provider,
        "access_token": "t",
        "start_date": "2025-01-01",
        ACCOUNT_KEY[provider]: "acct",
    }
    settings = load_settings(config, now=NOW)
    applied = {
        s.name: PARSED[s.name](settings)
        for s in _with_defaults()
        if s.name in PARSED and s.name != "provider" and provider in _declared_by(s.name)
    }
    expected = {name: DECLARED[name].default for name in applied}
    assert applied == expected


def test_an_unset_provider_is_the_schemas_default_provider():
    settings = load_settings({"access_token": "t", "store": "s", "start_date": "2025-01-01"}, now=NOW)
    assert settings.provider == CONFIG_SCHEMA["properties"]["provider"]["default"]


def test_the_json_schema_states_each_declared_default_choice_and_secret():
    properties = CONFIG_SCHEMA["properties"]
    for name, setting in DECLARED.items():
        prop = properties[name]
        if name != "provider":  # its default and choices are the registry's
            # no declared default: the schema may state the providers' shared one
            assert prop.get("default") == setting.default or setting.default is None, name
            assert prop.get("enum") == (list(setting.choices) or None), name
        assert bool(prop.get("secret")) == setting.secret, name
    assert CONFIG_SCHEMA["required"] == [s.name for s in DECLARED.values() if s.required]


def test_the_download_limits_default_to_the_declared_settings():
    limits = DownloadLimits()
    assert (limits.max_file_bytes, limits.max_export_bytes, limits.max_ratio, limits.timeout) == (
        DECLARED["max_download_file_mb"].default * MIB,
        DECLARED["max_download_export_mb"].default * MIB,
        DECLARED["max_decompression_ratio"].default,
        DECLARED["download_timeout"].default,
    )


def _meltano_settings() -> dict[str, dict[str, Any]]:
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    (tap,) = [p for p in project["plugins"]["extractors"] if p["name"] == "tap-commerce-exports"]
    return {s["name"]: s for s in tap["settings"]}


#: meltano.yml's kind for each declared kind: numbers are text (Meltano 4.4.1 cannot
#: pass a `decimal`, and casts an `integer` from the environment with int()); so is the
#: accounts list (its parse errors would quote tokens; see meltano.yml).
MELTANO_KIND = {
    "string": "string",
    "number": "string",
    "integer": "string",
    "date-time": "date_iso8601",
    "string-map": "object",
    "object": "object",
    "array": "string",
}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_meltano_yml_declares_the_setting_as_the_tap_does(name: str):
    setting = DECLARED[name]
    entry = _meltano_settings()[name]
    choices = CONFIG_SCHEMA["properties"][name].get("enum")  # the provider's: the registry's
    if choices:
        assert entry["kind"] == "options"
        assert sorted(o["value"] for o in entry["options"]) == sorted(choices)
    else:
        assert entry["kind"] == MELTANO_KIND[setting.kind]
    assert entry.get("label") == setting.label
    assert bool(entry.get("sensitive")) == setting.secret
    if "value" in entry:
        default = CONFIG_SCHEMA["properties"][name].get("default")
        assert str(entry["value"]) == str(default), "meltano.yml's value is not the tap's default"


def _readme_rows() -> dict[str, list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize("setting", _with_defaults(), ids=lambda s: s.name)
def test_the_readme_settings_table_states_each_declared_default(setting: Setting):
    default = CONFIG_SCHEMA["properties"][setting.name]["default"]
    assert f"`{default}`" in _readme_rows()[setting.name][1]
