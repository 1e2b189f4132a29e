"""What the tap says of itself: --about complete in every format, --help in our words for
--test, and a misspelt setting named with the closest one instead of silently ignored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tap_commerce_exports.config.unknown import unknown_settings
from tap_commerce_exports.tap import TapCommerceExports

EXE = Path(sys.executable).with_name("tap-commerce-exports")


def tap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, check=False, timeout=120)


def test_a_misspelt_setting_is_warned_with_the_closest_setting_and_the_run_goes_on(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"access_token": "t", "store": "s", "start_date": "2025-01-01", "lookbak": 3, "zzz_qqq": 1}
        )
    )
    done = tap("--config", str(config), "--discover")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "unknown setting" in line]
    assert len(warnings) == 2
    assert warnings[0].endswith("unknown setting 'lookbak' (did you mean 'lookback'?): ignored")
    assert warnings[1].endswith("unknown setting 'zzz_qqq': ignored")


def test_the_sdk_built_in_settings_are_known_settings():
    names = TapCommerceExports.setting_names()
    assert {
        "stream_maps",
        "flattening_enabled",
        "flattening_separator",
        "batch_config",
        "faker_config",
    } <= names
    assert unknown_settings(dict.fromkeys(names, 1), names) == []


def test_help_says_that_test_checks_access_and_creates_no_export():
    done = tap("--help")
    text = " ".join(done.stdout.split())
    assert "creating no export" in text
    assert "sync a single record for each stream" not in text


def test_about_text_marks_required_settings_and_gives_every_default():
    text = tap("--about").stdout
    assert "  * start_date (string; no default)" in text
    assert "  - lookback (number; default 7)" in text
    assert "  - window_days (number; default 30)" in text
    assert "      env: TAP_COMMERCE_EXPORTS_POLL_INTERVAL" in text


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_about_in_every_format_lists_every_setting_and_the_window_default(fmt):
    done = tap("--about", "--format", fmt)
    assert done.returncode == 0
    if fmt == "json":
        about = json.loads(done.stdout)
        assert about["settings"]["required"] == ["start_date"]
        assert about["settings"]["properties"]["window_days"]["default"] == 30
    else:
        assert "| window_days | False | 30 |" in done.stdout
