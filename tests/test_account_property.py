"""Every record says whose it is: ``_account``, part of every stream's primary key, which
no column of a file can take over."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tap_commerce_exports.files.headers import normalize_header, normalize_headers
from tap_commerce_exports.files.json_reader import JsonElementsFileReader
from tap_commerce_exports.providers.base import ExportStatus
from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tap_commerce_exports.singer.output import SingerOutput
from tap_commerce_exports.singer.sync import ExportSync
from tap_commerce_exports.tap import TapCommerceExports
from tap_commerce_exports.windows import Window, iso_z
from tests.fake_provider import FILE_HOST, ROWS, FakeFileHost, FakeProvider, registered


class FakeJsonProvider(FakeProvider):
    """The fake shop, exporting JSON elements that carry a key named like the property."""

    facts = replace(
        FakeProvider.facts,
        name="fakejson",
        file_format="json",
        file_reader=JsonElementsFileReader,
        file_extension="json",
        window_value=iso_z,  # its files write instants as ISO text
        files_add_columns=False,
    )

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        with self._lock:
            self.created.append((export_type, window))
            export_id = f"j{len(self.created)}"
        elements = [
            {"id": int(r["id"]), "name": r["name"], "created_at": r["created_at"], ACCOUNT_PROPERTY: 666}
            for r in ROWS
        ]
        FILE_HOST[0].files[f"/{export_id}.json"] = json.dumps({"elements": elements}).encode()
        return self._status(export_id)

    def file_urls(self, status: ExportStatus, *, refresh: bool = False) -> list[str]:
        return [f"{FILE_HOST[0].url}/{status.export_id}.json"]


class FakeCsvWithAccountColumn(FakeProvider):
    """The fake shop, whose CSV file brings a column headed ``_account``."""

    facts = replace(FakeProvider.facts, name="fakecsvaccount")

    def create_export(self, export_type: str, window: Window) -> ExportStatus:
        with self._lock:
            self.created.append((export_type, window))
            export_id = f"c{len(self.created)}"
        lines = ["ID,Name,Created At,_account"]
        lines += [f"{r['id']},{r['name']},{r['created_at']},evil" for r in ROWS]
        FILE_HOST[0].files[f"/{export_id}.csv"] = ("\n".join(lines) + "\n").encode()
        return self._status(export_id)


@pytest.fixture
def host() -> Iterator[FakeFileHost]:
    with registered(FakeProvider, FakeJsonProvider, FakeCsvWithAccountColumn) as file_host:
        yield file_host


def run(host: FakeFileHost, provider: str, **extra: Any) -> list[dict[str, Any]]:
    config = {
        "provider": provider,
        "access_token": "t0ken",
        "api_url": host.url,
        "store": "shop-one",
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
        **extra,
    }
    tap = TapCommerceExports(config=config, validate_config=True)
    out = io.BytesIO()
    ExportSync(tap, tap.settings, output=SingerOutput(out)).run()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_record_of_a_single_account_run_carries_its_account_as_part_of_the_key(host):
    messages = run(host, "fakeshop")
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert records and {r[ACCOUNT_PROPERTY] for r in records} == {"shop-one"}
    for schema in (m for m in messages if m["type"] == "SCHEMA"):
        assert schema["key_properties"] == [ACCOUNT_PROPERTY, "id"]
        assert schema["schema"]["properties"][ACCOUNT_PROPERTY]["type"] == ["string"]


def test_every_discovered_stream_has_the_account_first_in_its_key():
    for provider in ("nextcommerce", "clover"):
        tap = TapCommerceExports(
            config={"provider": provider, "start_date": "2025-01-01"}, validate_config=False
        )
        for stream in tap.streams.values():
            assert stream.primary_keys[0] == ACCOUNT_PROPERTY
            assert stream.primary_keys[1:] == list(stream.definition.primary_keys)
            assert ACCOUNT_PROPERTY in stream.schema["properties"]


def test_no_csv_header_can_normalize_to_the_account_property():
    # headers are snake_cased with leading and trailing underscores stripped
    for header in ("_account", "__account", "_Account", " _account ", "#_account"):
        assert normalize_header(header) != ACCOUNT_PROPERTY
    assert ACCOUNT_PROPERTY not in normalize_headers(["_account", "account", "_ACCOUNT"])


def test_a_csv_column_headed_like_the_property_is_kept_under_its_own_name_and_does_not_overwrite_it(host):
    records = [m["record"] for m in run(host, "fakecsvaccount") if m["type"] == "RECORD"]
    assert records
    assert {r[ACCOUNT_PROPERTY] for r in records} == {"shop-one"}
    assert {r["account"] for r in records} == {"evil"}  # the file's column, normalized


def test_a_json_key_named_like_the_property_never_overwrites_it_nor_gets_the_record_rejected(host):
    records = [m["record"] for m in run(host, "fakejson") if m["type"] == "RECORD"]
    assert [r["id"] for r in records] == [1, 2, 3]
    assert {r[ACCOUNT_PROPERTY] for r in records} == {"shop-one"}
