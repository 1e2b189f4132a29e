"""A provider defined in the tests folder alone runs a full sync through the real engine
and Singer layer: a new platform is one module and one registration, nothing else."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tap_commerce_exports.singer.bookmarks import read_bookmark
from tap_commerce_exports.singer.output import SingerOutput
from tap_commerce_exports.singer.sync import ExportSync
from tap_commerce_exports.tap import TapCommerceExports
from tests.fake_provider import FakeFileHost, FakeProvider, registered


@pytest.fixture
def fake_registered() -> Iterator[FakeFileHost]:
    with registered(FakeProvider) as host:
        yield host


def config(host: FakeFileHost, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "fakeshop",
        "access_token": "t0ken",
        "api_url": host.url,
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
        **extra,
    }


def sync(cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], TapCommerceExports, FakeProvider]:
    tap = TapCommerceExports(config=cfg, validate_config=True)
    out = io.BytesIO()
    run = ExportSync(tap, tap.settings, output=SingerOutput(out))  # the registry builds it
    run.run()
    messages = [json.loads(line) for line in out.getvalue().splitlines()]
    assert isinstance(run.provider, FakeProvider)
    return messages, tap, run.provider


def test_a_provider_registered_from_outside_the_package_syncs_each_record_once_in_its_window(
    fake_registered: FakeFileHost,
):
    messages, tap, provider = sync(config(fake_registered))

    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert [r["id"] for r in records] == [1, 2, 3]  # row 4 is at the end instant: excluded
    assert records[0]["created_at"].startswith("2025-01-01T10:00:00")
    assert [window for _type, window in provider.created] == sorted(w for _t, w in provider.created)
    assert len(provider.created) == 2  # two one-day windows: the provider's default
    assert len(fake_registered.downloads) == 2
    bookmark = read_bookmark(dict(tap.state), "things", "127.0.0.1")
    assert bookmark is not None and bookmark.isoformat().startswith("2025-01-03T00:00:00")


def test_a_column_the_fake_schema_lacks_is_announced_and_kept_as_a_string(fake_registered: FakeFileHost):
    messages, _tap, _provider = sync(config(fake_registered))

    schemas = [m for m in messages if m["type"] == "SCHEMA"]
    assert "colour" in schemas[-1]["schema"]["properties"]
    first_with_colour = next(i for i, m in enumerate(messages) if m.get("record", {}).get("colour"))
    widened = next(
        i for i, m in enumerate(messages) if m["type"] == "SCHEMA" and "colour" in m["schema"]["properties"]
    )
    assert widened < first_with_colour


def test_the_fake_provider_is_checked_like_any_other_with_one_clear_line(fake_registered: FakeFileHost):
    from tap_commerce_exports.errors import ConfigError
    from tap_commerce_exports.settings import load_settings

    cfg = config(fake_registered)
    del cfg["api_url"]
    with pytest.raises(ConfigError, match="setting 'api_url' is missing"):
        load_settings(cfg)


def test_an_unregistered_provider_name_is_refused_naming_the_known_ones():
    from tap_commerce_exports.errors import ConfigError
    from tap_commerce_exports.settings import load_settings

    with pytest.raises(ConfigError, match="use one of clover, nextcommerce"):
        load_settings({"provider": "fakeshop", "access_token": "t", "start_date": "2025-01-01"})
