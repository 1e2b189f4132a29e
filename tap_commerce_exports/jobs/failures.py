"""Which failures end a whole account, and which end one window: decided here only.

Why one place: the engine calls the provider from its own thread (creates, status
checks, lists) and from the download pool (file URLs). Each call can fail, and each
caller used to ask the same question: is this about the window (its export failed, a
400 on its type) or about the account (the token is refused, a setting is wrong, its
export hours are closed and the user said stop)? An account failure is one that every
other export of the account would hit too: asking again per window would only repeat
the refusal, so every not-finished job of that account fails with it, while the other
accounts of the run go on.
"""

from __future__ import annotations

from tap_commerce_exports.errors import AuthError, ConfigError, UserError


class OutsideExportHours(UserError):
    """The account's export hours are closed and ``outside_hours`` is 'stop'."""


#: Errors no other export of the same account can avoid either.
ACCOUNT_FAILURES: tuple[type[BaseException], ...] = (AuthError, ConfigError, OutsideExportHours)


def is_account_failure(exc: BaseException | None) -> bool:
    """Whether ``exc`` stops its whole account (credentials, settings, closed hours)."""
    return isinstance(exc, ACCOUNT_FAILURES)
