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


class AuthError(UserError):
    """The API refused the credentials (401/403). The message names the setting to fix."""


class ExportFailed(UserError):
    """An export ended in a failed status, or never finished within ``export_timeout``."""


class InvalidFile(UserError):
    """A downloaded export file cannot be read at all (not UTF-8, not JSON, no header...)."""


class MissingWindowColumn(InvalidFile):
    """A file with rows has no column that tells which date window each row belongs to.

    Why an error and not a warning: without that column the boundary rule cannot be
    applied, so rows on a window boundary would be emitted twice (or rows at
    ``end_date`` once too often). The Singer layer adds which setting to set.
    """

    def __init__(
        self,
        *,
        stream: str,
        file: str,
        looked_for: tuple[str, ...],
        columns: list[str],
        date_time_columns: list[str] | None = None,
    ) -> None:
        self.stream = stream
        self.file = file
        self.looked_for = looked_for
        self.columns = columns
        likely = (
            f"; of those, date-times in the first row: {', '.join(date_time_columns)}"
            if date_time_columns
            else ""
        )
        super().__init__(
            f"{file}: no column gives each row's window instant (looked for "
            f"{', '.join(looked_for)}; the file has {', '.join(columns) or 'no columns'}{likely})"
        )


class InvalidRecord(UserError):
    """One record does not fit its stream's schema.

    Attributes name exactly where: stream, file, position (CSV line or JSON element
    index), column and the offending value (shortened), so that the one-line message is
    enough to find the row.
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
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        where = f"{file} {position}"
        col = f", column '{column}'" if column else ""
        super().__init__(f"invalid record in stream '{stream}' at {where}{col}: {reason} (value {shown})")


class TargetGone(UserError):
    """The target stopped reading our output (broken pipe)."""
