"""Clover's published export hours, and what the tap does outside them."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.providers.clover import availability_at

UTC = timezone.utc


@pytest.mark.parametrize(
    "moment, region, is_open",
    [
        ("2025-06-02T10:00:00", "us", True),  # Monday 10:00, opening minute
        ("2025-06-02T14:59:59", "us", True),
        ("2025-06-02T15:00:00", "us", False),  # closes at 15:00
        ("2025-06-07T09:00:00", "us", False),  # Saturday before opening
        ("2025-06-02T01:30:00", "eu", True),  # Monday 01-05
        ("2025-06-07T01:30:00", "eu", False),  # Saturday opens at 02
        ("2025-06-08T05:30:00", "eu", True),  # Sunday 02-06
        ("2025-06-02T20:00:00", "sandbox", True),
        ("2025-06-02T20:00:00", "la", True),  # unpublished: the tap can't know
    ],
)
def test_published_hours_per_region(moment, region, is_open):
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    assert availability_at(region, at).open is is_open


def test_closed_hours_say_when_they_open_next():
    at = datetime(2025, 6, 2, 16, 0, tzinfo=UTC)  # Monday after closing
    availability = availability_at("us", at)
    assert availability.opens_at == datetime(2025, 6, 3, 10, 0, tzinfo=UTC)
    assert "US" in availability.description


def test_outside_hours_with_stop_ends_at_once_saying_when_exports_open():
    from tap_commerce_exports.singer.output import SingerOutput
    from tap_commerce_exports.singer.sync import ExportSync
    from tap_commerce_exports.tap import TapCommerceExports

    tap = TapCommerceExports(
        config={
            "provider": "clover",
            "region": "us",
            "access_token": "t0ken-xyz",
            "merchant_id": "M1",
            "api_url": "http://127.0.0.1:9",  # never reached
            "start_date": "2025-01-01",
            "end_date": "2025-01-05",
            "outside_hours": "stop",
        }
    )
    with pytest.raises(UserError) as excinfo:
        saturday_evening = datetime(2025, 6, 7, 20, 0, tzinfo=UTC)
        ExportSync(
            tap, tap.settings, output=SingerOutput(io.BytesIO()), wall_clock=lambda: saturday_evening
        ).run()
    message = str(excinfo.value)
    assert "2025-06-08 10:00 UTC" in message and "outside_hours" in message
