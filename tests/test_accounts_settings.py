"""Many accounts in one config: ``accounts``, ``accounts_file``, fallbacks, one-line errors."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.providers.registry import build_providers
from tap_commerce_exports.settings import CONFIG_SCHEMA, load_settings

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
TOKEN = "tok-TOP-secret"
M2_TOKEN = "tok-M2-secret"


def clover(**overrides):
    config = {"provider": "clover", "access_token": TOKEN, "start_date": "2025-01-01", "region": "eu"}
    config.update(overrides)
    return config


def nc(**overrides):
    config = {"access_token": TOKEN, "start_date": "2025-01-01"}
    config.update(overrides)
    return config


def parse(config):
    return load_settings(config, now=NOW)


def config_error(config) -> str:
    with pytest.raises(ConfigError) as info:
        parse(config)
    message = str(info.value)
    assert "\n" not in message, message
    assert TOKEN not in message and M2_TOKEN not in message
    return message


def private_file(tmp_path, text, name="accounts.json", mode=0o600):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_without_accounts_the_top_level_settings_are_the_one_account():
    settings = parse(clover(merchant_id="M1"))
    assert [a.account for a in settings.all_accounts] == ["M1"]
    assert settings.all_accounts[0] is settings
    assert settings.setting_name("access_token") == "access_token"


def test_each_account_object_lays_its_keys_over_the_top_level_settings():
    settings = parse(
        clover(
            accounts=[
                {"merchant_id": "M1"},
                {"merchant_id": "M2", "access_token": M2_TOKEN, "region": "us"},
            ]
        )
    )
    m1, m2 = settings.all_accounts
    assert (m1.account, m1.access_token, m1.region, m1.api_url) == (
        "M1",
        TOKEN,
        "eu",
        "https://api.eu.clover.com",
    )
    assert (m2.account, m2.access_token, m2.region, m2.api_url) == (
        "M2",
        M2_TOKEN,
        "us",
        "https://api.clover.com",
    )
    assert m2.window == m1.window  # the shared settings are the top level's


def test_an_error_names_the_account_object_and_an_own_key_is_named_by_its_place():
    settings = parse(
        clover(accounts=[{"merchant_id": "M1"}, {"merchant_id": "M2", "access_token": M2_TOKEN}])
    )
    m1, m2 = settings.all_accounts
    assert m1.setting_name("access_token") == "access_token"  # it falls back to the top level
    assert m2.setting_name("access_token") == "accounts[1].access_token"
    message = config_error(clover(accounts=[{"merchant_id": "M1"}, {"merchant_id": "M2", "region": "mars"}]))
    assert message.startswith("accounts[1]: setting 'region' is 'mars'")


def test_next_commerce_accounts_are_stores_and_may_carry_their_own_webhook_secret():
    settings = parse(
        nc(
            webhook_secret="top-secret",
            accounts=[{"store": "alpha"}, {"store": "beta", "webhook_secret": "beta-secret"}],
        )
    )
    alpha, beta = settings.all_accounts
    assert (alpha.account, alpha.api_url, alpha.webhook_secret) == (
        "alpha",
        "https://alpha.29next.store/api/admin/",
        "top-secret",
    )
    assert (beta.account, beta.webhook_secret) == ("beta", "beta-secret")


def test_an_account_key_its_provider_does_not_know_is_one_line_naming_the_allowed_keys():
    message = config_error(clover(accounts=[{"merchant_id": "M1", "store": "x"}]))
    assert "accounts[0] has 'store'" in message and "merchant_id, access_token" in message
    message = config_error(nc(accounts=[{"store": "a", "window_days": 3}]))
    assert "accounts[0] has 'window_days'" in message and "top level" in message


def test_the_same_account_twice_is_one_line_naming_both_places():
    message = config_error(
        clover(accounts=[{"merchant_id": "M1"}, {"merchant_id": "M2"}, {"merchant_id": "M1"}])
    )
    assert message == "accounts[2] is account 'M1' again (as accounts[0]): list each account once"


def test_accounts_as_json_text_from_an_environment_variable_are_parsed():
    settings = parse(clover(accounts=json.dumps([{"merchant_id": "M1"}, {"merchant_id": "M2"}])))
    assert [a.account for a in settings.all_accounts] == ["M1", "M2"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (f'[{{"merchant_id": "M1", "access_token": "{M2_TOKEN}"', "is not valid JSON"),
        ('{"merchant_id": "M1"}', "must be a list"),
        ('["M1"]', "accounts[0] is not an object"),
    ],
)
def test_bad_accounts_text_is_one_line_that_never_quotes_it(value, words):
    assert words in config_error(clover(accounts=value))


def test_an_empty_accounts_list_means_the_top_level_account():
    assert [a.account for a in parse(clover(merchant_id="M1", accounts=[])).all_accounts] == ["M1"]


def test_accounts_file_may_be_a_json_list_or_json_lines_and_adds_to_accounts(tmp_path):
    listed = private_file(tmp_path, json.dumps([{"merchant_id": "M2"}, {"merchant_id": "M3"}]))
    settings = parse(clover(accounts=[{"merchant_id": "M1"}], accounts_file=str(listed)))
    assert [a.account for a in settings.all_accounts] == ["M1", "M2", "M3"]
    lines = private_file(
        tmp_path, '{"merchant_id": "M4"}\n\n{"merchant_id": "M5", "access_token": "x"}\n', "a.jsonl"
    )
    m4, m5 = parse(clover(accounts_file=str(lines))).all_accounts
    assert (m4.account, m5.account) == ("M4", "M5")
    assert m5.setting_name("access_token") == f"access_token on line 3 of accounts_file '{lines}'"


def test_an_accounts_file_others_can_read_is_refused_saying_how_to_fix_it(tmp_path):
    path = private_file(tmp_path, json.dumps([{"merchant_id": "M1"}]), mode=0o644)
    message = config_error(clover(accounts_file=str(path)))
    assert message == (
        f"setting 'accounts_file': accounts_file '{path}' can be read by other users (mode 0644) "
        f"and holds tokens: run chmod 600 '{path}'"
    )


def test_a_missing_accounts_file_is_one_line_naming_it(tmp_path):
    message = config_error(clover(accounts_file=str(tmp_path / "nope.json")))
    assert f"accounts_file '{tmp_path / 'nope.json'}' cannot be read (No such file or directory)" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        (f'[{{"merchant_id": "M1", "access_token": "{M2_TOKEN}"}}', "is not valid JSON (line 1"),
        (f'{{"merchant_id": "M1"}}\n{{"access_token": "{M2_TOKEN}"', "line 2 of accounts_file"),
        ('"M1"\n', "line 1 of accounts_file"),
    ],
)
def test_an_invalid_accounts_file_is_one_line_naming_the_file_and_never_quoting_it(tmp_path, text, words):
    path = private_file(tmp_path, text)
    message = config_error(clover(accounts_file=str(path)))
    assert words in message and str(path) in message


def test_each_account_gets_its_own_client_and_limiter_all_sharing_the_app_limiter():
    settings = parse(clover(accounts=[{"merchant_id": "M1"}, {"merchant_id": "M2"}]))
    providers = build_providers(settings)
    assert list(providers) == ["M1", "M2"]
    m1, m2 = providers["M1"], providers["M2"]
    assert m1.api is not m2.api
    assert m1.api._limiter.account is not m2.api._limiter.account  # noqa: SLF001 - per token
    assert m1.api._limiter.app is m2.api._limiter.app is m1.app_limiter  # noqa: SLF001 - per app
    assert m1.app_limiter is not None and m1.app_limiter.limit == 50


def test_app_wide_limits_default_to_the_provider_s_published_ones_and_are_settings():
    clover_settings = parse(clover(merchant_id="M1"))
    assert (clover_settings.app_max_requests_per_second, clover_settings.app_max_concurrent_requests) == (
        50,
        10,
    )
    nc_settings = parse(nc(store="s"))
    assert (nc_settings.app_max_requests_per_second, nc_settings.app_max_concurrent_requests) == (None, None)
    assert nc_settings.max_concurrent_exports_total is None
    tuned = parse(
        clover(
            merchant_id="M1",
            app_max_requests_per_second="20",
            app_max_concurrent_requests=4,
            max_concurrent_exports_total="6",
        )
    )
    assert (tuned.app_max_requests_per_second, tuned.app_max_concurrent_requests) == (20, 4)
    assert tuned.max_concurrent_exports_total == 6
    assert "max_concurrent_exports_total" in config_error(
        clover(merchant_id="M1", max_concurrent_exports_total=0)
    )


def test_the_schema_lists_the_accounts_settings_and_marks_accounts_secret():
    props = CONFIG_SCHEMA["properties"]
    for key in (
        "accounts",
        "accounts_file",
        "max_concurrent_exports_total",
        "app_max_requests_per_second",
        "app_max_concurrent_requests",
    ):
        assert key in props, key
    assert props["accounts"]["secret"] is True
    assert props["accounts"]["type"] == "array" or "array" in props["accounts"]["type"]


def test_a_request_takes_its_account_s_turn_then_the_app_s_and_a_429_pauses_only_the_account():
    from contextlib import contextmanager

    from tap_commerce_exports.http.ratelimit import LimiterChain

    events: list[str] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name
            self.paused = 0.0

        @contextmanager
        def slot(self):
            events.append(f"{self.name} in")
            yield
            events.append(f"{self.name} out")

        def pause(self, seconds: float) -> None:
            self.paused = seconds

    account, app = Recorder("account"), Recorder("app")
    chain = LimiterChain(account, app)
    with chain.slot():
        events.append("request")
    chain.pause(3)
    assert events == ["account in", "app in", "request", "app out", "account out"]
    assert (account.paused, app.paused) == (3, 0.0)
