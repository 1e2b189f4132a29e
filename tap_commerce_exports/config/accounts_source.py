"""Where the accounts of one run come from: ``accounts`` (a list, or its JSON text) and
``accounts_file`` (JSON list or JSON Lines: opened once, checked on the descriptor).

Why its own module: the sources are provider-agnostic (an account object is checked by
its provider's settings section, ``ExportProvider.check_account_object``), and each
entry keeps where it came from, so that an error names the exact place to fix
(``accounts[1].access_token``, ``access_token on line 3 of accounts_file '...'``).

Messages never quote the text they read: it holds tokens.
"""

from __future__ import annotations

import errno
import json
import os
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
    text = _read_private_file(path, where)
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


def _read_private_file(path: Path, where: str) -> str:
    """The text of ``path``, opened once and checked on that descriptor: a regular file, not
    a link, owned by this user, readable by nobody else.

    Why on the descriptor: checked by path and then read by path, a file swapped in between
    (a symlink flipped back and forth) is read unchecked; what is checked here is exactly
    what is read. ``O_NONBLOCK`` keeps a FIFO from blocking the open."""
    setting = "setting 'accounts_file'"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{setting}: {where} is a symbolic link: give the file's own path "
                f"('{os.path.realpath(path)}')"
            ) from None
        raise ConfigError(f"{setting}: {where} cannot be read ({exc.strerror}): check the path") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{setting}: {where} is not a file: give the path of a JSON file")
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"{setting}: {where} is owned by another user (uid {info.st_uid}) and holds tokens: "
                "use a file of the user the tap runs as"
            )
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{setting}: {where} can be read by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}) and holds tokens: run chmod 600 '{path}'"
            )
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        raw = b"".join(chunks)
    except OSError as exc:
        raise ConfigError(f"{setting}: {where} cannot be read ({exc.strerror}): check the path") from None
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{setting}: {where} cannot be read (not UTF-8 text): check the path") from None


#: Settings that choose the host an account's token is sent to.
HOST_KEYS = ("api_url",)
#: Credentials sent to that host.
SENT_SECRETS = ("access_token",)


def inherited(
    common: Mapping[str, Any], own: Mapping[str, Any], entry: AccountEntry, require_credentials: bool
) -> dict[str, Any]:
    """The top-level settings an account object inherits: all of them, but no credential
    when it names its own host.

    Why: an account object (one line of an accounts file) naming its own ``api_url`` would
    otherwise send the top-level token to the host it names; it must bring its own."""
    host = next((k for k in HOST_KEYS if k in own), None)
    if host is None:
        return dict(common)
    # a sandbox token (sent only to loopback, never a real credential) may still be inherited
    sandbox = own.get("sandbox_token") or common.get("sandbox_token")
    if require_credentials and not sandbox and not any(k in own for k in SENT_SECRETS):
        raise ConfigError(
            f"{entry.source} names its own '{host}', so it must give its own 'access_token' "
            f"(set '{entry.key_format.format(key='access_token')}'): the top-level token is never sent "
            "to a host an account names"
        )
    return {k: v for k, v in common.items() if k not in SENT_SECRETS}


def _entry(item: object, source: str, key_format: str) -> AccountEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{source} is not an object: give the account's settings, {_EXAMPLE}")
    return AccountEntry(values=dict(item), source=source, key_format=key_format)
