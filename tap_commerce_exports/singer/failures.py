"""What failed in a run (an account, a stream of an account) and the run's final error.

Why kept apart from the loop: a failure never stops the other accounts or streams, so the
sync only reports each one here as it happens and asks for the final error at the end:
one line per failed account (naming it and what to fix) when the run reads several, the
first failed stream's own words when it reads one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from tap_commerce_exports.errors import AccountsFailed, ExportFailed, account_failure_line

if TYPE_CHECKING:
    from tap_commerce_exports.config.run_settings import Settings
    from tap_commerce_exports.jobs.job import ExportJob

LOGGER = logging.getLogger("tap_commerce_exports.sync")


class RunFailures:
    """The failures of one run, in the order they happened."""

    def __init__(self, accounts: Mapping[str, Settings], *, many: bool) -> None:
        #: account -> its settings (where it was given, for the lines naming it)
        self.settings = accounts
        self.many = many
        #: account -> the error that stopped it (bad token, unknown merchant...)
        self.accounts: dict[str, BaseException] = {}
        #: (stream, account) -> the error that stopped that stream of that account
        self.pairs: dict[tuple[str, str], BaseException] = {}
        #: stream -> the first error that stopped it (of any account)
        self.streams: dict[str, BaseException] = {}

    def window_failed(self, job: ExportJob, account: str) -> None:
        """The engine gave up on ``job``: its account failed, or its window did. The one
        account of a one-account run can't go on: its own words end the run at once."""
        if job.account_failed and job.error is not None:
            if not self.many:
                raise job.error
            if account not in self.accounts:
                self.accounts[account] = job.error
                LOGGER.error("%s", account_failure_line(self.settings[account], job.error))
            return
        self.pairs.setdefault((job.stream.name, account), job.error or ExportFailed(job.label))
        if job.error is not None:
            self.streams.setdefault(job.stream.name, job.error)

    def stream_failed(self, stream: str, account: str, error: BaseException) -> None:
        """Reading a window of ``stream`` failed (an unreadable file, an invalid record)."""
        LOGGER.error("%s", error)
        self.streams.setdefault(stream, error)
        self.pairs.setdefault((stream, account), error)

    def raise_final(self, streams: Iterable[str]) -> None:
        """The run's error, if anything failed (``streams``: the run's, in order)."""
        if self.many:
            self._raise_account_failures()
            return
        failed = [(name, self.streams[name]) for name in streams if name in self.streams]
        if failed:
            name, first = failed[0]
            others = f" (and {len(failed) - 1} more stream(s) failed, see the log)" if len(failed) > 1 else ""
            raise ExportFailed(f"stream '{name}' failed: {first}{others}")

    def _raise_account_failures(self) -> None:
        """One line per failed account, naming it and what to fix; the others finished."""
        lines: list[str] = []
        for account, settings in self.settings.items():
            error: BaseException | None = self.accounts.get(account)
            if error is None:
                streams = [(n, e) for (n, a), e in self.pairs.items() if a == account]
                if not streams:
                    continue
                name, first = streams[0]
                more = (
                    f" (and {len(streams) - 1} more stream(s) failed, see the log)"
                    if len(streams) > 1
                    else ""
                )
                error = ExportFailed(f"stream '{name}' failed: {first}{more}")
            lines.append(account_failure_line(settings, error))
        if lines:
            done = len(self.settings) - len(lines)
            LOGGER.error(
                "%d of %d accounts failed; the other %d finished", len(lines), len(self.settings), done
            )
            raise AccountsFailed(lines, len(self.settings))
