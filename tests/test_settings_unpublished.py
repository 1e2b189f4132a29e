"""The settings of the facts no provider publishes: ``key_columns``, ``file_timezone``
and Clover's ``export_hours``; each mistake is one line naming the setting."""

from __future__ import annotations

import pytest

from tap_commerce_exports.providers.registry import build_provider
from tests.test_settings import clover, config_error, nc, parse


def test_key_columns_name_a_stream_s_key_column_and_default_to_none():
    assert parse(nc()).key_columns == {}
    assert parse(nc(key_columns={"orders": " Order Ref "})).key_columns == {"orders": "Order Ref"}
    assert parse(nc(key_columns='{"customers": "customer_no"}')).key_columns == {"customers": "customer_no"}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"order": "ref"}, "names stream 'order'"),
        ({"orders": ""}, "gives stream 'orders' no column name"),
        ("orders=ref", "is not a JSON object"),
        (["orders"], "must be an object"),
    ],
)
def test_a_bad_key_columns_value_says_what_to_put_there(value, words):
    message = config_error(nc(key_columns=value))
    assert message.startswith("setting 'key_columns'") and words in message


def test_file_timezone_is_an_iana_zone_name_or_unset():
    assert parse(nc()).file_timezone is None
    assert parse(nc(file_timezone=" America/New_York ")).file_timezone == "America/New_York"
    message = config_error(nc(file_timezone="EST5EDT-ish"))
    assert message.startswith("setting 'file_timezone'") and "IANA" in message


def test_export_hours_reach_the_clover_provider_and_default_to_the_region_s():
    assert build_provider(parse(clover())).export_hours is False  # type: ignore[attr-defined]
    hours = build_provider(parse(clover(export_hours={"daily": [8, 12]}))).export_hours  # type: ignore[attr-defined]
    assert hours == {day: (8, 12) for day in range(7)}
    from_env = build_provider(parse(clover(export_hours='{"mon": [1, 2]}'))).export_hours  # type: ignore[attr-defined]
    assert from_env == {0: (1, 2)}
    assert build_provider(parse(clover(export_hours="always"))).export_hours is None  # type: ignore[attr-defined]


def test_a_bad_export_hours_value_is_one_line_naming_the_setting():
    message = config_error(clover(export_hours={"weekdays": [10, 15]}))
    assert message.startswith("setting 'export_hours'") and "mon-fri" in message
