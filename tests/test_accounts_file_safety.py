"""`accounts_file` is read as it was checked, and a token goes only where its owner sent it
(issue 23, item 5).

The file was checked by path (`stat`) and read by path again: a file swapped in between
(a symlink flip won 103 times in 10 s) was read unchecked; a link or another user's file
passed; and an account object naming its own `api_url` inherited the top-level
`access_token`, so one injected line sent the real token where it said.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tap_commerce_exports.errors import ConfigError
from tap_commerce_exports.settings import load_settings

TOKEN = "tok-TOP-secret"
OWN = "tok-own-secret"
NOW_CONFIG = {"provider": "clover", "access_token": TOKEN, "start_date": "2025-01-01", "region": "eu"}


def parse(**overrides):
    return load_settings({**NOW_CONFIG, **overrides})


def refused(**overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(**overrides)
    message = str(caught.value)
    assert "\n" not in message and TOKEN not in message and OWN not in message
    return message


def write(path: Path, accounts: list[dict], mode: int = 0o600) -> Path:
    path.write_text("\n".join(json.dumps(a) for a in accounts) + "\n")
    path.chmod(mode)
    return path


def test_a_file_swapped_after_its_check_is_never_read(tmp_path, monkeypatch):
    """The swap happens right after the tap looks at the file, however it looks (by path
    or on a descriptor): deterministic, where the real attack races."""
    path = write(tmp_path / "accounts.jsonl", [{"merchant_id": "M1"}])
    evil = write(
        tmp_path / "evil.jsonl", [{"merchant_id": "M1", "api_url": "https://attacker.example"}], 0o644
    )

    swapped = []

    def swap_after(real):
        def look(*args, **kwargs):
            result = real(*args, **kwargs)
            if not swapped:
                swapped.append(True)
                os.replace(str(evil), str(path))
            return result

        return look

    monkeypatch.setattr(Path, "stat", swap_after(Path.stat))
    monkeypatch.setattr(os, "fstat", swap_after(os.fstat))
    (account,) = parse(accounts_file=str(path)).all_accounts
    assert swapped
    assert account.api_url == "https://api.eu.clover.com", "the swapped-in file was read"


def test_an_accounts_file_that_is_a_link_is_refused_naming_the_fix(tmp_path):
    real = write(tmp_path / "real.jsonl", [{"merchant_id": "M1"}])
    link = tmp_path / "accounts.jsonl"
    link.symlink_to(real)
    message = refused(accounts_file=str(link))
    assert f"accounts_file '{link}' is a symbolic link" in message and "the file's own path" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_an_accounts_file_owned_by_another_user_is_refused(tmp_path):
    path = write(tmp_path / "accounts.jsonl", [{"merchant_id": "M1"}])
    os.chown(path, 12345, 12345)
    message = refused(accounts_file=str(path))
    assert "is owned by another user (uid 12345)" in message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "accounts.jsonl"
    os.mkfifo(fifo, 0o600)
    assert "is not a file" in refused(accounts_file=str(fifo))


def test_an_account_naming_its_own_api_url_inherits_no_token(tmp_path):
    path = write(tmp_path / "accounts.jsonl", [{"merchant_id": "M1", "api_url": "https://attacker.example"}])
    message = refused(accounts_file=str(path))
    assert "names its own 'api_url'" in message and "its own 'access_token'" in message
    assert message.startswith(f"line 1 of accounts_file '{path}'")
    # the same from the `accounts` setting
    message = refused(accounts=[{"merchant_id": "M1"}, {"merchant_id": "M2", "api_url": "https://x.example"}])
    assert (
        message.startswith("accounts[1] names its own 'api_url'") and "'accounts[1].access_token'" in message
    )


def test_an_account_naming_its_own_api_url_and_token_is_used_with_its_own_token():
    one, two = parse(
        accounts=[
            {"merchant_id": "M1"},
            {"merchant_id": "M2", "api_url": "https://other.example", "access_token": OWN},
        ]
    ).all_accounts
    assert (one.access_token, one.api_url) == (TOKEN, "https://api.eu.clover.com")  # no host of its own
    assert (two.access_token, two.api_url) == (OWN, "https://other.example")
