"""An account's file facts (zone of naive timestamps, metadata types): read once, on
first use; what cannot be read stays unknown with a note, never an error."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from tap_commerce_exports.http.api_client import ApiError
from tap_commerce_exports.providers.base import StoreFacts
from tap_commerce_exports.singer.file_facts import FileFacts


class Provider:
    def __init__(self, answer: StoreFacts | Exception) -> None:
        self.answer = answer
        self.calls = 0

    def store_facts(self) -> StoreFacts:
        self.calls += 1
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_the_store_s_zone_wins_and_is_read_once_per_account(caplog):
    types = {"orders": {"gift_wrap": {"type": ["boolean", "null"]}}}
    store = Provider(StoreFacts(timezone="Asia/Kathmandu", column_types=types))
    facts = FileFacts({"shop": store}, file_timezone="Europe/Berlin")  # type: ignore[dict-item]
    with caplog.at_level(logging.WARNING, logger="tap_commerce_exports"):
        assert facts.zone("shop") == ZoneInfo("Asia/Kathmandu")
        assert facts.column_types("shop", "orders") == types["orders"]
        assert facts.column_types("shop", "customers") == {}
    assert store.calls == 1
    assert "'file_timezone' (Europe/Berlin) is not used" in caplog.text


def test_without_the_store_s_zone_file_timezone_is_used_else_nothing(caplog):
    refused = StoreFacts(notes=("GET store/ answered HTTP 403 (the token needs scope store:read)",))
    with caplog.at_level(logging.INFO, logger="tap_commerce_exports"):
        assert FileFacts({"a": Provider(refused)}, "America/Chicago").zone("a") == ZoneInfo("America/Chicago")  # type: ignore[dict-item]
        assert FileFacts({"a": Provider(refused)}, None).zone("a") is None  # type: ignore[dict-item]
    assert "account 'a': GET store/ answered HTTP 403" in caplog.text


def test_an_api_failure_leaves_the_facts_unknown_with_one_note():
    failing = Provider(ApiError("GET store/ kept failing (HTTP 503) after 5 tries"))
    facts = FileFacts({"a": failing}, None)  # type: ignore[dict-item]
    assert facts.zone("a") is None and facts.column_types("a", "orders") == {}
    assert facts.zone("a") is None and failing.calls == 1
