"""The command line: user mistakes end with exactly one line, no traceback; --about and --discover work."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from tap_commerce_exports.cli import main

PREFIX = "tap-commerce-exports: error:"
TOKEN = "tok-cli-secret-9876"


def _console_log_handlers() -> list[logging.StreamHandler]:
    return [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]


def run_cli(argv) -> None:
    """``main(argv)`` in this process. The SDK adds a console log handler bound to the
    sys.stderr of each run; point all of them at this test's captured stderr first."""
    for handler in _console_log_handlers():
        handler.stream = sys.stderr  # (setStream would flush a stream already closed)
    main(argv)


@pytest.fixture(autouse=True)
def _sdk_log_handlers_released():
    yield
    for handler in _console_log_handlers():
        handler.stream = sys.__stderr__


def write_config(tmp_path, config) -> str:
    path = tmp_path / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


def good(**overrides):
    config = {
        "access_token": TOKEN,
        "store": "demo-store",
        "start_date": "2025-01-01",
        "end_date": "2025-02-01",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def run_failing(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        run_cli(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize(
    "overrides, setting",
    [
        ({"start_date": "not-a-date"}, "start_date"),
        ({"start_date": "2025-03-01", "end_date": "2025-01-01"}, "end_date"),
        ({"provider": "shopify"}, "provider"),
        ({"access_token": None}, "access_token"),
        ({"store": None}, "store"),
        ({"api_url": "http://example.com/api/admin/"}, "api_url"),
        ({"webhook_listen": "127.0.0.1:8765"}, "webhook_secret"),
        ({"provider": "clover", "merchant_id": "M", "window_days": 45}, "window_days"),
    ],
)
def test_a_bad_config_file_ends_with_exit_2_and_one_error_line_naming_the_setting(
    tmp_path, capsys, overrides, setting
):
    line = run_failing(capsys, ["--config", write_config(tmp_path, good(**overrides))])
    assert f"'{setting}'" in line


def test_the_error_line_never_shows_the_token(tmp_path, capsys):
    line = run_failing(capsys, ["--config", write_config(tmp_path, good(provider=TOKEN))])
    assert TOKEN not in line


def test_a_config_file_that_is_not_json_ends_with_one_error_line(tmp_path, capsys):
    line = run_failing(capsys, ["--config", write_config(tmp_path, "{not json")])
    assert "config" in line


def test_a_missing_config_file_ends_with_one_error_line(tmp_path, capsys):
    line = run_failing(capsys, ["--config", str(tmp_path / "nowhere.json")])
    assert "nowhere.json" in line


def test_about_as_json_describes_the_tap_and_its_settings(capsys):
    with pytest.raises(SystemExit) as info:
        run_cli(["--about", "--format", "json"])
    assert info.value.code in (0, None)
    about = json.loads(capsys.readouterr().out)
    assert about["name"] == "tap-commerce-exports"
    assert "start_date" in about["settings"]["properties"]
    assert about["settings"]["properties"]["access_token"].get("secret") is True


def discovered(capsys, tmp_path, config) -> list[str]:
    try:
        run_cli(["--config", write_config(tmp_path, config), "--discover"])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    catalog = json.loads(capsys.readouterr().out)
    return sorted(s["tap_stream_id"] for s in catalog["streams"])


def test_discover_lists_the_13_next_commerce_streams_by_default(capsys, tmp_path):
    streams = discovered(capsys, tmp_path, good())
    assert len(streams) == 13
    assert {
        "orders",
        "order_line_items",
        "customers",
        "transactions",
        "disputes",
        "subscriptions",
        "subscription_line_items",
        "open_carts",
        "open_cart_line_items",
        "returns",
        "return_line_items",
        "fulfillments",
        "fulfillment_line_items",
    } == set(streams)


def test_discover_lists_the_2_clover_streams_with_provider_clover(capsys, tmp_path):
    config = good(provider="clover", merchant_id="MID1", store=None)
    assert discovered(capsys, tmp_path, config) == ["orders", "payments"]


def test_a_state_file_that_is_not_json_ends_with_one_error_line_naming_the_option(tmp_path, capsys):
    state = tmp_path / "state.json"
    state.write_text("bookmarks: none")
    line = run_failing(capsys, ["--config", write_config(tmp_path, good()), "--state", str(state)])
    assert "--state" in line


def test_accounts_in_an_environment_variable_that_is_not_json_is_one_line_naming_the_variable(
    monkeypatch, capsys
):
    secret = "tok-IN-BROKEN-JSON"
    monkeypatch.setenv("TAP_COMMERCE_EXPORTS_PROVIDER", "clover")
    monkeypatch.setenv("TAP_COMMERCE_EXPORTS_START_DATE", "2025-01-01")
    monkeypatch.setenv("TAP_COMMERCE_EXPORTS_ACCOUNTS", f'[{{"merchant_id": "M1", "access_token": "{secret}"')
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["--config", "ENV", "--test"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "tap-commerce-exports: error: environment variable TAP_COMMERCE_EXPORTS_ACCOUNTS is not "
        "valid JSON: give setting 'accounts' as JSON text"
    ]
    assert secret not in err
