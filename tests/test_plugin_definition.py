"""Meltano's plugin definition (plugin/tap-commerce-exports.yml) and meltano.yml say what
the tap's `--about` says: every setting, capability and default, nothing more.

The definition is generated (scripts/plugin_definition.py, `make plugin-definition`); a
setting added to the tap without regenerating it fails the first spec. That a fresh Meltano
project can add the tap from the definition and run it is specified, as the README shows
it, in tests/test_readme_commands.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import plugin_definition  # noqa: E402

ABOUT = plugin_definition.about()
SCHEMA = ABOUT["settings"]


def committed() -> dict:
    return dict(yaml.safe_load(plugin_definition.DEFINITION.read_text(encoding="utf-8")))


def project_extractor() -> dict:
    project = yaml.safe_load((REPO / "meltano.yml").read_text(encoding="utf-8"))
    (extractor,) = (p for p in project["plugins"]["extractors"] if p["name"] == "tap-commerce-exports")
    return dict(extractor)


def test_the_committed_definition_is_what_about_generates():
    text = plugin_definition.DEFINITION.read_text(encoding="utf-8")
    assert text == plugin_definition.render(ABOUT), "stale: run make plugin-definition"


def test_the_definition_has_the_hub_fields_and_every_capability_of_about():
    definition = committed()
    for field in ("name", "namespace", "variant", "label", "description", "pip_url", "executable"):
        assert definition[field], field
    assert definition["keywords"] and definition["maintenance_status"] == "active"
    assert definition["capabilities"] == ABOUT["capabilities"]
    assert "schema-flattening" in definition["capabilities"]


def test_every_setting_has_kind_label_description_and_its_default_and_secrets_are_sensitive():
    settings = {s["name"]: s for s in committed()["settings"]}
    assert list(settings) == list(SCHEMA["properties"])
    for name, prop in SCHEMA["properties"].items():
        entry = settings[name]
        assert entry["kind"] and entry["label"] and entry["description"], name
        assert entry.get("sensitive", False) == bool(prop.get("secret")), name
        assert entry.get("value") == prop.get("default"), name
    for name in SCHEMA.get("required", []):
        assert settings[name]["description"].endswith("Required."), name


def test_meltano_yml_declares_the_capabilities_and_settings_of_about_as_the_definition_does():
    extractor = project_extractor()
    assert sorted(extractor["capabilities"]) == sorted(ABOUT["capabilities"])
    declared = {s["name"]: s for s in extractor["settings"]}
    assert sorted(declared) == sorted(SCHEMA["properties"])
    for entry in committed()["settings"]:
        mine = declared[entry["name"]]
        for field in ("kind", "label", "sensitive", "value"):
            assert mine.get(field) == entry.get(field), (entry["name"], field)
    assert extractor["settings_group_validation"] == committed()["settings_group_validation"]
