"""The README is a user's document: its settings table lists every setting of the tap."""

from __future__ import annotations

import re
from pathlib import Path

from tap_commerce_exports.settings import CONFIG_SCHEMA

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_settings_table_has_a_row_for_every_setting():
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert sorted(set(CONFIG_SCHEMA["properties"]) - rows) == []
