"""Errors the tap raises, split by who must act on them.

A :class:`UserError` is something the person running the tap can fix (a setting, a
token, a permission). The CLI prints its message as ONE line, without a traceback, and
exits non-zero. Everything else is a bug or an outage and keeps its traceback.

Messages never contain secrets: build them from setting *names*, export ids and
statuses, and URLs passed through :func:`tap_commerce_exports.http.redact.redact_url`.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; printed as one line (the message) by the CLI."""


class ConfigError(UserError):
    """A setting is missing, malformed or inconsistent. The message names the setting."""


class StateError(UserError):
    """The STATE given (``--state``) has a shape the tap cannot read; the line names the place."""


class AuthError(UserError):
    """The API refused the credentials (401/403). The message names the setting to fix."""


class ExportFailed(UserError):
    """An export ended in a failed status, or never finished within ``export_timeout``."""


class InvalidFile(UserError):
    """A downloaded export file cannot be read at all (not UTF-8, not JSON, no header...)."""


class MissingKeyColumn(InvalidFile):
    """A file has none of the columns its stream's primary key may be read from.

    Why an error: a keyless stream cannot be deduplicated by any target, and rows on a
    window boundary may come twice; so the stream stops with the file's columns and the
    setting that names the key's column.
    """

    def __init__(self, *, stream: str, file: str, looked_for: tuple[str, ...], columns: list[str]) -> None:
        self.stream = stream
        self.file = file
        self.looked_for = looked_for
        self.columns = columns
        super().__init__(
            f"{file}: no key column for stream '{stream}' (looked for {', '.join(looked_for)}; the "
            f"file has {', '.join(columns) or 'no columns'}): set 'key_columns' to "
            f'{{"{stream}": "<column>"}} naming the column that identifies each row'
        )


class InvalidRecord(UserError):
    """One record does not fit its stream's schema.

    Attributes name exactly where: stream, file, position (CSV line or JSON element
    index), column and the offending value. The one-line message gives where and the
    value's type and size, never the value itself: a ragged row carries customers'
    names and e-mails, which belong in the rejects file (0600), not in logs.
    """

    def __init__(
        self,
        *,
        stream: str,
        file: str,
        position: str,
        column: str | None,
        value: object,
        reason: str,
    ) -> None:
        self.stream = stream
        self.file = file
        self.position = position
        self.column = column
        self.value = value
        self.reason = reason
        where = f"{file} {position}"
        col = f", column '{column}'" if column else ""
        super().__init__(
            f"invalid record in stream '{stream}' at {where}{col}: {reason} ({describe_value(value)})"
        )


def describe_value(value: object) -> str:
    """A value's JSON type and size, for log lines that must not carry the value."""
    if value is None:
        return "value: null"
    if isinstance(value, bool):
        return "value: a boolean"
    if isinstance(value, (int, float)):
        return "value: a number"
    if isinstance(value, str):
        return f"value: a string of {len(value)} character(s)"
    if isinstance(value, (list, tuple)):
        return f"value: a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"value: an object of {len(value)} key(s)"
    return f"value: a {type(value).__name__}"


class AccountsFailed(UserError):
    """Some accounts of a many-account run failed; the others finished.

    The message is one line per failed account (``account_failure_line``): the CLI prints
    each as its own line, so every failing account is named with the setting to fix.
    """

    def __init__(self, lines: list[str], total: int) -> None:
        self.lines = lines
        self.total = total
        super().__init__("\n".join(lines))


def account_failure_line(settings: object, error: BaseException) -> str:
    """``account 'm2' (accounts[1]): <what went wrong, naming the setting to fix>``."""
    account = getattr(settings, "account", "?")
    source = getattr(settings, "account_source", "")
    where = f" ({source})" if source else ""
    return f"account '{account}'{where}: {error}"


class TargetGone(UserError):
    """The target stopped reading our output (broken pipe)."""
