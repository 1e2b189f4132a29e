"""What a provider reads of its account's own facts (time zone, metadata types) and how
it says a create was refused for its range, against the sandbox on loopback."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.providers.base import CreateRefused
from tap_commerce_exports.providers.clover import availability_at, parse_export_hours
from tap_commerce_exports.providers.registry import build_provider
from tap_commerce_exports.settings import load_settings
from tap_commerce_exports.windows import Window
from tests.sandbox_fixtures import account_config

SANDBOX_SETTINGS = dict(processing_delay=0.0, nc_rate_limit=1000, clover_rate_limit=1000)
UTC = timezone.utc


def provider(sandbox, name: str):
    return build_provider(load_settings({**account_config(sandbox, name), "start_date": "2025-01-01"}))


def test_the_store_s_time_zone_and_typed_metadata_columns_are_read_when_the_token_may(sandbox):
    sandbox.control(store_timezone="Asia/Kathmandu")
    facts = provider(sandbox, "nextcommerce").store_facts()
    assert facts.timezone == "Asia/Kathmandu" and facts.notes == ()
    assert facts.column_types["subscription_line_items"]["gift_wrap"] == {"type": ["boolean", "null"]}
    assert "gift_message" not in facts.column_types.get("orders", {}), "text stays text"


def test_a_token_without_the_scopes_leaves_both_unknown_with_a_note_each_and_no_error(sandbox):
    sandbox.control(store_read=False, metadata_read=False)
    facts = provider(sandbox, "nextcommerce").store_facts()
    assert facts.timezone is None and facts.column_types == {}
    assert [n.split(" answered")[0] for n in facts.notes] == ["GET store/", "GET metadata/"]
    assert "store:read" in facts.notes[0] and "metadata:read" in facts.notes[1]


def test_a_clover_create_refused_for_its_range_is_a_create_refused_with_the_server_s_words(sandbox):
    sandbox.control(clover_strict_range=True)
    clover = provider(sandbox, "clover")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(CreateRefused) as caught:
        clover.create_export("ORDERS", Window(start, start + timedelta(days=30)))
    assert caught.value.describe() == 'HTTP 400: "The maximum time range of an export is 30 days"'
    assert clover.create_export("ORDERS", Window(start, start + timedelta(days=15))).export_id
    sandbox.control(complete_exports=True)


@pytest.mark.parametrize(
    ("value", "moment", "is_open"),
    [
        ({"daily": [8, 12]}, "2025-06-02T11:59:00", True),
        ({"daily": [8, 12]}, "2025-06-02T12:00:00", False),
        ({"mon-fri": [1, 5], "sat": [2, 5]}, "2025-06-08T03:00:00", False),  # Sunday: not named
        ({"mon-fri": [1, 5], "sat": [2, 5]}, "2025-06-07T02:30:00", True),
        ("always", "2025-06-08T23:00:00", True),
    ],
)
def test_export_hours_replace_the_region_s_published_hours(value, moment, is_open):
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    assert availability_at("us", at, parse_export_hours(value)).open is is_open


def test_export_hours_say_when_they_open_next_in_their_own_words():
    hours = parse_export_hours({"mon-fri": [10, 13]})
    closed = availability_at("us", datetime(2025, 6, 6, 14, 0, tzinfo=UTC), hours)  # Friday after
    assert closed.opens_at == datetime(2025, 6, 9, 10, 0, tzinfo=UTC)
    assert "Mon 10-13" in closed.description


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"monday": [10, 15]}, "day 'monday'"),
        ({"mon": [15, 10]}, "start before end"),
        ({"mon": [10, 25]}, "from 0 to 24"),
        ({"mon": "10-15"}, "[start_hour, end_hour]"),
        ([10, 15], "must be an object"),
    ],
)
def test_a_malformed_export_hours_is_one_line_naming_the_setting(value, words):
    with pytest.raises(ConfigError, match="export_hours") as caught:
        parse_export_hours(value)
    assert words in str(caught.value)
