"""Settings: every setting's parsing, defaults per provider, and one-line errors naming the setting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tap_commerce_exports.errors import ConfigError, UserError
from tap_commerce_exports.settings import CONFIG_SCHEMA, load_settings

UTC = timezone.utc
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def nc(**overrides):
    config = {"access_token": "tok-123456", "store": "demo-store", "start_date": "2025-01-01"}
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def clover(**overrides):
    config = {
        "provider": "clover",
        "access_token": "tok-123456",
        "merchant_id": "MID1",
        "start_date": "2025-01-01",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def parse(config, **kwargs):
    return load_settings(config, now=NOW, **kwargs)


def config_error(config, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        parse(config, **kwargs)
    message = str(info.value)
    assert "\n" not in message, f"error is not one line: {message!r}"
    assert isinstance(info.value, UserError)
    return message


# ------------------------------------------------------------------ defaults per provider
def test_next_commerce_defaults_are_30_day_windows_4_exports_and_4_requests_per_second():
    s = parse(nc())
    assert s.provider == "nextcommerce"
    assert s.window == timedelta(days=30)
    assert s.max_concurrent_exports == 4
    assert s.max_requests_per_second == 4
    assert s.api_url == "https://demo-store.29next.store/api/admin/"
    assert s.api_version == "2024-04-01"
    assert s.lookback == timedelta(days=7), "re-read a week: an order's changes come within days"
    assert (s.poll_interval, s.poll_max_interval, s.export_timeout) == (5, 120, 10800)
    assert s.outside_hours == "wait"
    assert s.on_invalid_record == "fail"
    assert s.rejects_dir == Path("tap-commerce-exports-rejects")
    assert s.webhook_listen is None and s.webhook_secret is None


def test_clover_defaults_are_one_export_at_a_time_16_requests_per_second_and_us_host():
    s = parse(clover())
    assert s.provider == "clover"
    assert s.max_concurrent_exports == 1
    assert s.max_requests_per_second == 16
    assert s.window == timedelta(days=30)
    assert s.region == "us"
    assert s.api_url == "https://api.clover.com"
    assert s.merchant_id == "MID1"


@pytest.mark.parametrize(
    "region, host",
    [
        ("us", "https://api.clover.com"),
        ("eu", "https://api.eu.clover.com"),
        ("LA", "https://api.la.clover.com"),
        ("sandbox", "https://apisandbox.dev.clover.com"),
    ],
)
def test_clover_region_picks_the_api_host(region, host):
    assert parse(clover(region=region)).api_url == host


def test_clover_window_of_30_days_is_accepted_and_longer_is_refused_with_the_limit_named():
    assert parse(clover(window_days=30)).window == timedelta(days=30)
    message = config_error(clover(window_days=31))
    assert "'window_days'" in message
    assert "30" in message


def test_next_commerce_allows_windows_longer_than_30_days():
    assert parse(nc(window_days=90)).window == timedelta(days=90)


def test_fractional_window_days_become_hours():
    assert parse(nc(window_days=0.5)).window == timedelta(hours=12)


# ------------------------------------------------------------------ parsing each setting
def test_provider_is_case_and_space_insensitive():
    assert parse(nc(provider=" NextCommerce ")).provider == "nextcommerce"


def test_unknown_provider_is_one_line_naming_provider_and_the_choices():
    message = config_error(nc(provider="shopify"))
    assert "'provider'" in message and "shopify" in message
    assert "nextcommerce" in message and "clover" in message


def test_unknown_clover_region_is_one_line_naming_region():
    assert "'region'" in config_error(clover(region="mars"))


def test_api_url_overrides_the_store_host_and_gains_a_trailing_slash():
    s = parse(nc(store=None, api_url="http://127.0.0.1:8000/api/admin"))
    assert s.api_url == "http://127.0.0.1:8000/api/admin/"


def test_clover_api_url_override_loses_its_trailing_slash():
    assert parse(clover(api_url="http://127.0.0.1:9000/")).api_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/api/admin/",
        "http://127.0.0.2:8000/api/admin/",
        "http://[::1]:8000/api/admin/",
        "http://localhost:8000/api/admin/",
        "https://example.com/api/admin/",
    ],
)
def test_api_url_may_be_plain_http_only_on_loopback(url):
    assert parse(nc(api_url=url)).api_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/api/admin/",
        "http://10.0.0.5/api/admin/",
        "http://localhost.example.com/api/admin/",
    ],
)
def test_non_https_api_url_off_loopback_is_refused_naming_api_url(url):
    message = config_error(nc(api_url=url))
    assert "'api_url'" in message and "https" in message


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com/api", "https:///nohost"])
def test_api_url_that_is_not_a_full_url_is_refused_naming_api_url(url):
    assert "'api_url'" in config_error(nc(api_url=url))


def test_api_url_carrying_credentials_is_refused_without_echoing_them():
    message = config_error(nc(api_url="https://user:hunter22@example.com/api/admin/"))
    assert "'api_url'" in message
    assert "hunter22" not in message


def test_api_version_is_taken_as_given():
    assert parse(nc(api_version="2023-02-10")).api_version == "2023-02-10"


def test_a_date_without_time_is_midnight_utc():
    s = parse(nc(start_date="2025-01-01", end_date="2025-02-01"))
    assert s.start_date == datetime(2025, 1, 1, tzinfo=UTC)
    assert s.end_date == datetime(2025, 2, 1, tzinfo=UTC)


def test_dates_with_offsets_or_z_are_converted_to_utc():
    s = parse(nc(start_date="2025-01-01T02:00:00+02:00", end_date="2025-01-02T00:00:00Z"))
    assert s.start_date == datetime(2025, 1, 1, tzinfo=UTC)
    assert s.end_date == datetime(2025, 1, 2, tzinfo=UTC)
    assert s.start_date.utcoffset() == timedelta(0)


def test_end_date_defaults_to_now():
    assert parse(nc()).end_date == NOW


@pytest.mark.parametrize("key", ["start_date", "end_date"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "01/02/2025"])
def test_unparseable_date_is_one_line_naming_the_setting_and_the_value(key, value):
    message = config_error(nc(**{key: value}))
    assert f"'{key}'" in message and value in message


def test_missing_start_date_is_one_line_naming_start_date():
    assert "'start_date'" in config_error(nc(start_date=None))


def test_end_date_before_start_date_is_one_line_naming_both_settings():
    message = config_error(nc(start_date="2025-02-01", end_date="2025-01-01"))
    assert "'end_date'" in message and "'start_date'" in message


def test_end_date_equal_to_start_date_is_refused():
    message = config_error(nc(start_date="2025-02-01", end_date="2025-02-01T00:00:00Z"))
    assert "'end_date'" in message


def test_start_date_in_the_future_with_default_end_is_refused():
    assert "'end_date'" in config_error(nc(start_date="2030-01-01"))


def test_numbers_are_parsed_from_numbers_or_numeric_strings():
    s = parse(
        nc(
            window_days="7",
            lookback=2,
            poll_interval="0.5",
            poll_max_interval=60,
            export_timeout="3600",
            max_concurrent_exports="2",
            max_requests_per_second=1.5,
        )
    )
    assert s.window == timedelta(days=7)
    assert s.lookback == timedelta(days=2)
    assert s.poll_interval == 0.5
    assert s.poll_max_interval == 60
    assert s.export_timeout == 3600
    assert s.max_concurrent_exports == 2 and isinstance(s.max_concurrent_exports, int)
    assert s.max_requests_per_second == 1.5


@pytest.mark.parametrize(
    "key",
    [
        "window_days",
        "lookback",
        "poll_interval",
        "poll_max_interval",
        "export_timeout",
        "max_concurrent_exports",
        "max_requests_per_second",
    ],
)
def test_a_number_setting_given_text_is_one_line_naming_it(key):
    message = config_error(nc(**{key: "lots"}))
    assert f"'{key}'" in message and "not a number" in message


@pytest.mark.parametrize(
    "key, value",
    [
        ("window_days", 0),
        ("lookback", -1),
        ("poll_interval", 0),
        ("export_timeout", -5),
        ("max_concurrent_exports", 0),
        ("max_requests_per_second", 0),
        ("window_days", "nan"),
    ],
)
def test_a_number_setting_below_its_minimum_is_one_line_naming_it(key, value):
    message = config_error(nc(**{key: value}))
    assert f"'{key}'" in message and "at least" in message


def test_poll_max_interval_below_poll_interval_is_one_line_naming_both():
    message = config_error(nc(poll_interval=30, poll_max_interval=10))
    assert "'poll_max_interval'" in message and "'poll_interval'" in message


@pytest.mark.parametrize(
    "key, good, bad",
    [
        ("outside_hours", "STOP", "sometimes"),
        ("on_invalid_record", "log", "ignore"),
    ],
)
def test_choice_settings_accept_their_options_and_refuse_others_naming_the_setting(key, good, bad):
    assert getattr(parse(clover(**{key: good})), key) == good.lower()
    message = config_error(clover(**{key: bad}))
    assert f"'{key}'" in message and bad in message


def test_rejects_dir_is_a_path():
    assert parse(nc(rejects_dir="/tmp/rej")).rejects_dir == Path("/tmp/rej")


# ------------------------------------------------------------------ credentials
def test_missing_access_token_is_one_line_naming_access_token():
    message = config_error(nc(access_token=None))
    assert "'access_token'" in message


def test_missing_store_without_api_url_is_one_line_naming_store():
    message = config_error(nc(store=None))
    assert "'store'" in message and "'api_url'" in message


def test_store_given_as_a_full_host_is_refused_naming_store():
    assert "'store'" in config_error(nc(store="demo.29next.store"))


def test_missing_clover_merchant_id_is_one_line_naming_merchant_id():
    assert "'merchant_id'" in config_error(clover(merchant_id=None))


def test_credentials_may_be_absent_when_not_required():
    s = parse(clover(access_token=None, merchant_id=None), require_credentials=False)
    assert s.access_token == "" and s.merchant_id is None


def test_no_error_message_ever_contains_the_token():
    token = "tok-SECRET-value"
    for bad in (
        nc(access_token=token, provider="x"),
        nc(access_token=token, start_date="x"),
        nc(access_token=token, api_url="http://example.com/"),
    ):
        assert token not in config_error(bad)


# ------------------------------------------------------------------ webhook
def test_webhook_listen_is_parsed_as_host_and_port():
    s = parse(nc(webhook_listen="0.0.0.0:8765", webhook_secret="whsec"))
    assert s.webhook_listen == ("0.0.0.0", 8765)
    assert s.webhook_secret == "whsec"


def test_webhook_listen_accepts_bracketed_ipv6_and_a_bare_port():
    assert parse(nc(webhook_listen="[::1]:9000", webhook_secret="w")).webhook_listen == ("::1", 9000)
    assert parse(nc(webhook_listen=":9000", webhook_secret="w")).webhook_listen == ("0.0.0.0", 9000)


@pytest.mark.parametrize("value", ["8765x", "host", "host:", "host:70000"])
def test_malformed_webhook_listen_is_one_line_naming_it(value):
    assert "'webhook_listen'" in config_error(nc(webhook_listen=value, webhook_secret="w"))


def test_webhook_listen_without_secret_is_one_line_naming_webhook_secret():
    message = config_error(nc(webhook_listen="127.0.0.1:8765"))
    assert "'webhook_secret'" in message and "webhook_listen" in message


def test_webhook_listen_with_clover_is_refused_naming_webhook_listen():
    assert "'webhook_listen'" in config_error(clover(webhook_listen="127.0.0.1:1", webhook_secret="w"))


# ------------------------------------------------------------------ schema
def test_config_schema_lists_every_setting_and_marks_secrets():
    props = CONFIG_SCHEMA["properties"]
    for key in (
        "provider",
        "access_token",
        "store",
        "merchant_id",
        "region",
        "api_url",
        "api_version",
        "start_date",
        "end_date",
        "window_days",
        "lookback",
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
    ):
        assert key in props, key
    assert props["access_token"].get("secret") is True
    assert props["webhook_secret"].get("secret") is True
    assert "start_date" in CONFIG_SCHEMA.get("required", [])


# ------------------------------------------------------------------ window_columns
def test_window_columns_name_a_stream_s_window_column_and_default_to_none():
    assert parse(nc()).window_columns == {}
    assert parse(nc(window_columns={"orders": " Placed On "})).window_columns == {"orders": "Placed On"}
    assert parse(nc(window_columns='{"customers": "signup"}')).window_columns == {"customers": "signup"}
    assert parse(clover(window_columns={"payments": "serverCreated"})).window_columns == {
        "payments": "serverCreated"
    }


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"order": "x"}, "names stream 'order', which Next Commerce does not have: use one of orders,"),
        ({"orders": ""}, "gives stream 'orders' no column name"),
        ({"orders": 3}, "gives stream 'orders' no column name"),
        ("orders=x", "is not a JSON object"),
        (["orders"], "must be an object of stream -> column"),
    ],
)
def test_a_bad_window_columns_value_says_what_to_put_there(value, words):
    message = config_error(nc(window_columns=value))
    assert message.startswith("setting 'window_columns'")
    assert words in message
