"""One sync path: the CLI's run and singer-sdk's per-stream path are the same code.

singer-sdk reaches the tap two ways: ``Tap.sync_all`` (the CLI: the tap's own, all
streams at once) and ``Stream.sync`` -> ``get_records`` (its standard tests, its
``Tap.sync_all`` and its dry runs: one stream at a time, the SDK writing the records).
Both go through ``ExportSync.sync``: the same windows, engine, saved exports, bookmarks
and STATE, and the same closing of everything opened, whether the sync ends done, failed,
or cut short by the SDK's record limit. The sandbox runs in this process here, so the
HTTP sessions the tap opens can be counted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from singer_sdk import Tap

from tap_commerce_exports.errors import UserError
from tap_commerce_exports.singer.bookmarks import read_bookmark
from tap_commerce_exports.tap import TapCommerceExports
from tests.fake_provider import FakeFileHost
from tests.sandbox_fixtures import account_config
from tests.tap_harness import utc
from tests.test_fake_provider import config as fake_config
from tests.test_fake_provider import fake_registered  # noqa: F401 - a fixture

SANDBOX_SETTINGS = dict(processing_delay=0.02, nc_rate_limit=1000, clover_rate_limit=1000)
STREAM = "orders"


@dataclass
class Sessions:
    """Every ``requests.Session`` made while the fixture is active, and which were closed."""

    opened: list[requests.Session] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)

    def left_open(self) -> list[requests.Session]:
        return [s for s in self.opened if id(s) not in self.closed]


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> Sessions:
    seen = Sessions()
    real_init, real_close = requests.Session.__init__, requests.Session.close

    def init(self: requests.Session, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        seen.opened.append(self)

    def close(self: requests.Session) -> None:
        seen.closed.add(id(self))
        real_close(self)

    monkeypatch.setattr(requests.Session, "__init__", init)
    monkeypatch.setattr(requests.Session, "close", close)
    return seen


def new_tap(config: dict[str, Any], streams: list[str] | None = None) -> TapCommerceExports:
    tap = TapCommerceExports(config=config, validate_config=True)
    if streams is not None:
        for name, stream in tap.streams.items():
            stream.selected = name in streams
    return tap


def cli_path(tap: TapCommerceExports) -> None:
    tap.sync_all()  # what the CLI runs


def sdk_path(tap: TapCommerceExports) -> None:
    Tap.sync_all(tap)  # singer-sdk's own: Stream.sync -> get_records, stream by stream


def sdk_dry_run(tap: TapCommerceExports) -> None:
    tap.run_sync_dry_run(dry_run_record_limit=1)  # the SDK stops reading after one record


PATHS: dict[str, Callable[[TapCommerceExports], None]] = {
    "cli": cli_path,
    "sdk-per-stream": sdk_path,
    "sdk-stopped-at-a-record-limit": sdk_dry_run,
}


def messages_of(path: Callable[[TapCommerceExports], None], tap: TapCommerceExports) -> list[dict[str, Any]]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(out):
        path(tap)
    out.flush()
    return [json.loads(line) for line in out.buffer.getvalue().decode().splitlines() if line.strip()]  # type: ignore[attr-defined]


def sandbox_config(sandbox: Any, provider: str, **overrides: Any) -> dict[str, Any]:
    return {
        **account_config(sandbox, provider),
        "start_date": "2025-01-01T00:00:00Z",
        "end_date": "2025-01-03T00:00:00Z",
        "window_days": 1,
        "poll_interval": 0.02,
        "poll_max_interval": 0.1,
        "max_requests_per_second": 500,
        "export_timeout": 30,
        "export_attempts": 1,
        **overrides,
    }


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
def test_every_http_session_a_sync_opens_is_closed_when_it_ends(sandbox, sessions, provider, path):
    messages = messages_of(path, new_tap(sandbox_config(sandbox, provider), [STREAM]))

    assert any(m["type"] == "RECORD" for m in messages)
    assert len(sessions.opened) >= 2, "the provider's API client and the file downloader"
    assert sessions.left_open() == []


FAILURES = {
    "token-refused": ({"access_token": "not-the-sandbox-token"}, {}),
    "export-failed": ({}, {"fault_export_failed": 100}),
}


@pytest.mark.parametrize("provider", ["nextcommerce", "clover"])
@pytest.mark.parametrize(("config_change", "sandbox_change"), FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize("path", [cli_path, sdk_path], ids=["cli", "sdk-per-stream"])
def test_every_http_session_a_failed_sync_opened_is_closed_too(
    sandbox, sessions, provider, config_change, sandbox_change, path
):
    sandbox.control(**sandbox_change)
    tap = new_tap(sandbox_config(sandbox, provider, **config_change), [STREAM])

    with pytest.raises(UserError):
        messages_of(path, tap)

    assert sessions.opened
    assert sessions.left_open() == []


def records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def last_state(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return [m["value"] for m in messages if m["type"] == "STATE"][-1]


def test_the_sdk_per_stream_path_emits_the_records_and_bookmark_of_a_cli_run(
    fake_registered: FakeFileHost,  # noqa: F811 - the fixture
):
    cli = messages_of(cli_path, new_tap(fake_config(fake_registered)))
    sdk = messages_of(sdk_path, new_tap(fake_config(fake_registered)))

    assert records(sdk) == records(cli) and len(records(cli)) == 3
    account = "127.0.0.1"  # the fake's account: its api_url's host
    assert read_bookmark(last_state(cli), "things", account) == utc(fake_config(fake_registered)["end_date"])
    # The SDK adds keys of its own to the stream's entry; the tap's bookmarks are the same.
    assert (
        last_state(sdk)["bookmarks"]["things"]["partitions"]
        == last_state(cli)["bookmarks"]["things"]["partitions"]
    )


def test_on_the_sdk_path_a_files_new_column_is_announced_before_the_records_that_carry_it(
    fake_registered: FakeFileHost,  # noqa: F811 - the fixture
):
    messages = messages_of(sdk_path, new_tap(fake_config(fake_registered)))

    first_with = next(i for i, m in enumerate(messages) if m["type"] == "RECORD" and "colour" in m["record"])
    announced = [
        i
        for i, m in enumerate(messages)
        if m["type"] == "SCHEMA" and "colour" in m["schema"]["properties"] and i < first_with
    ]
    assert announced, "a SCHEMA with the new column comes before its first record"
    assert [r.get("colour") for r in records(messages)] == ["red", "blue", None]


def _generator_of(tap: TapCommerceExports) -> Iterator[dict[str, Any]]:
    return iter(tap.streams["things"].get_records(None))


def test_a_per_stream_sync_the_sdk_stops_reading_closes_what_it_opened(
    fake_registered: FakeFileHost,  # noqa: F811 - the fixture
    sessions: Sessions,
):
    records_ = _generator_of(new_tap(fake_config(fake_registered)))
    with redirect_stdout(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")):
        first = next(records_)
        assert sessions.opened and sessions.left_open(), "the sync is under way"
        records_.close()  # what the SDK's record limit comes to

    assert first["id"] == 1
    assert sessions.left_open() == []
