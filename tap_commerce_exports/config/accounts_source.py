"""Where the accounts of one run come from: ``accounts`` (a list, or its JSON text) and
``accounts_file`` (JSON list or JSON Lines, readable by its owner only).

Why its own module: the sources are provider-agnostic (an account object is checked by
its provider's settings section, ``ExportProvider.check_account_object``), and each
entry keeps where it came from, so that an error names the exact place to fix
(``accounts[1].access_token``, ``access_token on line 3 of accounts_file '...'``).

Messages never quote the text they read: it holds tokens.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tap_commerce_exports.errors import ConfigError

_EXAMPLE = 'e.g. [{"merchant_id": "M1", "access_token": "..."}]'


@dataclass(frozen=True)
class AccountEntry:
    """One account object as given, and where it was given."""

    values: Mapping[str, Any]
    #: Where it was given, for messages: ``accounts[1]``, ``line 3 of accounts_file 'a.jsonl'``.
    source: str
    #: How a key of this object is named to the user: ``accounts[1].{key}``.
    key_format: str


def read_accounts(config: Mapping[str, Any]) -> list[AccountEntry]:
    """Every account object of ``accounts`` then of ``accounts_file`` (none: one account,
    the top-level settings)."""
    entries: list[AccountEntry] = []
    value = config.get("accounts")
    if isinstance(value, str) and value.strip():
        try:  # an environment variable gives the list as JSON text
            value = json.loads(value)
        except ValueError:
            raise ConfigError(
                f"setting 'accounts' is not valid JSON: give a list of account objects, {_EXAMPLE}"
            ) from None
    if value not in (None, "", []):
        if not isinstance(value, list):
            raise ConfigError(f"setting 'accounts' must be a list of account objects, {_EXAMPLE}")
        for i, item in enumerate(value):
            entries.append(_entry(item, f"accounts[{i}]", f"accounts[{i}].{{key}}"))
    path_text = config.get("accounts_file")
    if path_text is not None and str(path_text).strip():
        entries.extend(read_accounts_file(Path(str(path_text).strip())))
    return entries


def read_accounts_file(path: Path) -> list[AccountEntry]:
    """The account objects of ``path``: a JSON list, or one JSON object per line."""
    where = f"accounts_file '{path}'"
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"setting 'accounts_file': {where} is not a file: give the path of a JSON file")
        if mode & 0o077:
            raise ConfigError(
                f"setting 'accounts_file': {where} can be read by other users (mode "
                f"{stat.S_IMODE(mode):04o}) and holds tokens: run chmod 600 '{path}'"
            )
        text = path.read_text(encoding="utf-8")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(
            f"setting 'accounts_file': {where} cannot be read ({reason}): check the path"
        ) from None
    stripped = text.lstrip("\ufeff").strip()
    if not stripped:
        raise ConfigError(f"setting 'accounts_file': {where} is empty: give a JSON list of account objects")
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"setting 'accounts_file': {where} is not valid JSON (line {exc.lineno}, column "
                f"{exc.colno}): fix the file (a JSON list, or one JSON object per line)"
            ) from None
        return [
            _entry(item, f"item {i} of {where}", f"{{key}} of item {i} of {where}")
            for i, item in enumerate(items)
        ]
    entries: list[AccountEntry] = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"setting 'accounts_file': line {number} of {where} is not a JSON object "
                f"(column {exc.colno}): fix the file (a JSON list, or one JSON object per line)"
            ) from None
        entries.append(_entry(item, f"line {number} of {where}", f"{{key}} on line {number} of {where}"))
    return entries


def _entry(item: object, source: str, key_format: str) -> AccountEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{source} is not an object: give the account's settings, {_EXAMPLE}")
    return AccountEntry(values=dict(item), source=source, key_format=key_format)
