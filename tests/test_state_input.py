"""STATE as the tap reads it: every malformed shape is one line naming the place, never a
traceback; saved ids follow the id rules before they are used or logged; partitions of
accounts no longer configured leave the STATE (issue 23, item 7).

Through the real engine and Singer layer, on the fake platform of the tests folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tap_commerce_exports.errors import StateError, UserError
from tap_commerce_exports.providers import registry
from tap_commerce_exports.singer.bookmarks import read_bookmark
from tests.fake_provider import FakeFileHost, FakeProvider, registered
from tests.test_accounts_sync import TokenCheckingShop, config, sync

STREAM = "things"


@pytest.fixture
def host() -> Iterator[FakeFileHost]:
    with registered(TokenCheckingShop) as file_host:
        yield file_host
        registry.PROVIDERS.pop(TokenCheckingShop.facts.name, None)


def partition(account: str = "a1", **fields: Any) -> dict[str, Any]:
    return {"context": {"account": account}, "replication_key": "window_end", **fields}


def marks(*partitions: Any) -> dict[str, Any]:
    return {"bookmarks": {STREAM: {"partitions": list(partitions)}}}


@pytest.mark.parametrize(
    ("state", "says"),
    [
        (marks(partition(replication_key_value="2025-01-02T00:00:00")), "has no UTC offset"),
        ({"bookmarks": []}, "STATE's 'bookmarks' must be an object (got a list)"),
        ({"bookmarks": {STREAM: []}}, "bookmarks.things must be an object (got a list)"),
        ({"bookmarks": {STREAM: {"partitions": {"a": 1}}}}, "bookmarks.things.partitions must be a list"),
        (marks("a1"), "bookmarks.things.partitions[0] must be an object (got a string)"),
        (marks({"context": "a1"}), "bookmarks.things.partitions[0].context must be an object"),
        (marks({"context": {"account": ["a1"]}}), "partitions[0].context.account must be a string"),
        (marks(partition(replication_key_value="0001-01-01T00:00:00Z")), "is before 1970"),
        (marks(partition(replication_key_value=5)), "must be a string (got a number)"),
        (marks(partition(replication_key_value="soon")), "is not an ISO 8601 instant"),
        (marks(partition(exports="x")), "bookmarks.things.partitions[0].exports must be a list"),
    ],
)
def test_a_malformed_state_is_one_line_naming_the_place_never_a_traceback(host, state, says):
    cfg = {**config(host, [{"store": "a1"}]), "lookback": 1}  # days
    with pytest.raises(UserError) as caught:
        sync(cfg, state)
    message = str(caught.value)
    assert isinstance(caught.value, StateError), message
    assert says in message and "\n" not in message
    assert message.endswith("fix or remove the state (--state) to go on")


def saved(export_id: Any, start: str = "2025-01-01T00:00:00Z", end: str = "2025-01-02T00:00:00Z"):
    return {"id": export_id, "window_start": start, "window_end": end}


@pytest.mark.parametrize(
    "bad_id",
    ["x\n2025-01-01 INFO forged line", "9" * 2_000_000, "", True, ["1"], "\x1b[31m"],
    ids=["newline", "2MB", "empty", "bool", "list", "escape"],
)
def test_a_saved_export_id_breaking_the_id_rules_is_dropped_never_used_or_logged(
    host,
    caplog,
    monkeypatch,
    bad_id,
):
    adopted: list[str] = []
    monkeypatch.setattr(
        FakeProvider, "get_export", lambda self, i: adopted.append(i) or FakeProvider._status(i)
    )
    cfg = config(host, [{"store": "a1"}])
    with caplog.at_level(logging.INFO):
        records, state, error = sync(cfg, marks(partition(exports=[saved(bad_id)])))
    assert error is None and len(records) == 3
    assert adopted == [], "a saved id breaking the rules was followed"
    text = "\n".join(r.getMessage() for r in caplog.records)
    if isinstance(bad_id, str) and bad_id:
        assert bad_id not in text
    assert max(len(r.getMessage()) for r in caplog.records) < 1000
    assert "a saved export of stream 'things' of 'a1' breaks the id rules" in text


def test_partitions_of_accounts_no_longer_configured_leave_the_state(host, caplog):
    junk = [partition(f"GONE{i}", replication_key_value="2025-01-02T00:00:00Z") for i in range(1000)]
    mine = partition("a1", replication_key_value="2025-01-02T00:00:00Z")
    with caplog.at_level(logging.INFO):
        _records, state, error = sync(config(host, [{"store": "a1"}]), marks(*junk, mine))
    assert error is None
    assert [p["context"]["account"] for p in state["bookmarks"][STREAM]["partitions"]] == ["a1"]
    assert read_bookmark(state, STREAM, "a1") is not None
    lines = [r.getMessage() for r in caplog.records if "no longer configured" in r.getMessage()]
    assert lines == [
        "STATE: dropped 1000 partition(s) of 1000 account(s) no longer configured (stream 'things'); "
        "their bookmarks are not kept"
    ]


def test_an_unsafe_account_name_in_the_state_is_never_logged(host, caplog):
    forged = "x\nERROR forged"
    with caplog.at_level(logging.INFO):
        sync(
            config(host, [{"store": "a1"}]),
            marks(partition(forged, replication_key_value="2025-01-02T00:00:00Z")),
        )
    assert all(forged not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("text", ['[{"bookmarks": {}}]', '"a text"', "7"])
def test_a_state_file_that_is_not_an_object_is_one_line_from_the_cli(tmp_path, text):
    import subprocess
    import sys

    (tmp_path / "state.json").write_text(text)
    (tmp_path / "config.json").write_text('{"store": "s", "access_token": "t", "start_date": "2025-01-01"}')
    proc = subprocess.run(
        [sys.executable, "-m", "tap_commerce_exports", "--config", str(tmp_path / "config.json"),
         "--state", str(tmp_path / "state.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert "STATE must be a JSON object" in line and "fix or remove the state (--state)" in line
