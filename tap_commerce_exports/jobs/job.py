"""One export job: a stream over one window, and where it is in its life.

Life of a job (``JobState``); every arrow is an entry of :data:`TRANSITIONS`::

    QUEUED --> CREATING --accepted--> WAITING --status DONE--> DOWNLOADING --files--> READY
      ^           |  \\___accepted, already DONE______________^                       |
      +--refused--+                                                          CONSUMED <-+
                                                                  (records emitted, files removed)
    any live state --> FAILED     (the provider, the download or the consumer failed it)
    any live state --> CANCELLED  (an earlier window of its stream failed, or the sync stopped)

Durable exports (#12) add four edges, each made by the engine in one place:

    QUEUED --adopt--> WAITING          an export saved in the last run's STATE, no create
    WAITING --retry--> QUEUED          its export failed (budget left), or an adopted one is gone
    DOWNLOADING --replace--> QUEUED    an adopted export's files are gone (deleted after 24 h)
    WAITING --split--> SPLIT           failed past its budget: two half windows take its place
    QUEUED --split--> SPLIT            longer than the span its (stream, account) learned
                                       works (``jobs/spans.py``): shorter windows take its place
    CREATING --split--> SPLIT          its create refused for its range (400): two halves, once

Why a table: the engine thread, the download pool, the consumer (the Singer layer) and
``stop()`` all move jobs, and a request in flight can come back after another thread
moved its job on (a cancelled job must not become WAITING again when its create
answers). So a move names the state it expects to leave; :meth:`ExportJob.move`
refuses a move the table does not allow, and the engine makes every move under its
lock, through one method, and re-reads the state after each request.

A SPLIT job is final: the consumer puts its parts (``parts``) in its place, so the
bookmark passes its window only after every part was emitted.
"""

from __future__ import annotations

import enum
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.providers.base import ExportPhase, ExportStatus
from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.windows import Window


class JobState(enum.Enum):
    QUEUED = "queued"
    CREATING = "creating"  # the create request is in flight
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    READY = "ready"
    CONSUMED = "consumed"  # the consumer had it; its files are gone
    FAILED = "failed"
    CANCELLED = "cancelled"
    SPLIT = "split"  # failed past its budget, or too long: ``parts`` (shorter windows) replace it


#: States that hold one of the ``max_concurrent_exports`` places.
IN_FLIGHT = frozenset({JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING})
#: States a job never leaves.
FINAL = frozenset({JobState.CONSUMED, JobState.FAILED, JobState.CANCELLED, JobState.SPLIT})
_LIVE = (JobState.QUEUED, JobState.CREATING, JobState.WAITING, JobState.DOWNLOADING, JobState.READY)

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.CREATING, JobState.WAITING, JobState.SPLIT}),  # WAITING: adopted
    JobState.CREATING: frozenset({JobState.QUEUED, JobState.WAITING, JobState.DOWNLOADING, JobState.SPLIT}),
    JobState.WAITING: frozenset({JobState.DOWNLOADING, JobState.QUEUED, JobState.SPLIT}),
    JobState.DOWNLOADING: frozenset({JobState.READY, JobState.QUEUED}),
    JobState.READY: frozenset({JobState.CONSUMED}),
}
for _state in _LIVE:  # a live job can always fail or be cancelled
    TRANSITIONS[_state] = TRANSITIONS.get(_state, frozenset()) | {JobState.FAILED, JobState.CANCELLED}


_Q, _C, _W, _D, _R = (
    JobState.QUEUED,
    JobState.CREATING,
    JobState.WAITING,
    JobState.DOWNLOADING,
    JobState.READY,
)
#: Each edge of :data:`TRANSITIONS` and the one :class:`ExportJob` method that makes it
#: (with the fields that go with it): nothing else moves a job.
EDGE_METHODS: dict[tuple[JobState, JobState], str] = {
    (_Q, _W): "adopt",
    (_Q, _C): "begin_create",
    (_Q, JobState.SPLIT): "split",
    (_C, _Q): "refused",
    (_C, _W): "created",
    (_C, _D): "created_done",
    (_C, JobState.SPLIT): "split",
    (_W, _D): "begin_download",
    (_W, _Q): "requeue",
    (_W, JobState.SPLIT): "split",
    (_D, _Q): "requeue",
    (_D, _R): "downloaded",
    (_R, JobState.CONSUMED): "consume",
    **{(s, JobState.FAILED): "fail" for s in _LIVE},
    **{(s, JobState.CANCELLED): "cancel" for s in _LIVE},
}


#: What a move expects the job to be in: one state, or any of several.
Expected = JobState | tuple[JobState, ...] | frozenset[JobState]


class IllegalTransition(RuntimeError):
    """A move the job's life does not have: a bug in the engine, never a user's mistake."""


@dataclass(eq=False)
class ExportJob:
    """A stream's export over one window, from request to files on disk.

    ``state`` is read-only: only :meth:`move` changes it (the engine calls it under its
    lock).
    """

    stream: ExportStreamDefinition
    window: Window
    seq: int  # position of this window within its stream
    #: The provider's ``account`` key (store, merchant) whose export this is; "" means
    #: the engine's only provider. Windows are ordered per (stream, account).
    account: str = ""
    _state: JobState = field(default=JobState.QUEUED, init=False, repr=False)
    status: ExportStatus | None = None
    files: list[Path] = field(default_factory=list)
    error: BaseException | None = None
    workdir: Path | None = None
    first_attempt_at: float | None = None  # monotonic, first create attempt
    created_at: float | None = None  # monotonic, export accepted by the provider
    download_started_at: float | None = None  # monotonic, status DONE first seen
    next_check_at: float = 0.0
    checks: int = 0
    bytes_downloaded: int = 0
    abandoned: bool = False  # an earlier window of its stream failed
    wake_requested: bool = False  # the webhook said it is ready: check it now
    adopt_id: str | None = None  # an export of this window saved in the last run's STATE
    adopt_created_at: datetime | None = None  # when that export was created (wall clock)
    adopt_listed: bool = False  # ... found in the provider's list, not in saved state
    adopted: bool = False  # the export now followed came from saved state (or the list)
    created_wall: datetime | None = None  # when the provider accepted the export
    failures: int = 0  # exports of this window that ended failed
    parts: tuple[ExportJob, ...] | None = None  # the windows that replace a SPLIT job
    range_refused: bool = False  # a half of a window whose create was refused for its range

    @property
    def state(self) -> JobState:
        return self._state

    def in_state(self, *states: JobState) -> bool:
        """Whether the job is in one of ``states`` now (another thread may move it next)."""
        return self._state in states

    def move(self, expected: Expected, to: JobState) -> None:
        """Go from ``expected`` (one state or several) to ``to``, or raise.

        The caller holds the engine's lock. A wake request belongs to one wait: it ends
        with it, so a webhook that came during a status check can't outlive the job's
        WAITING (it would keep the engine thread awake for good).
        """
        allowed = (expected,) if isinstance(expected, JobState) else tuple(expected)
        if self._state not in allowed or to not in TRANSITIONS.get(self._state, ()):
            raise IllegalTransition(
                f"{self.label}: cannot go from {self._state.value} to {to.value}"
                f" (expected {'/'.join(s.value for s in allowed)})"
            )
        self._state = to
        if to is not JobState.WAITING:
            self.wake_requested = False

    # ------------------------------------------------------------ transitions
    # One method per edge of the job's life: each makes its move (checked by
    # :data:`TRANSITIONS`) AND the field changes that go with it, so no other module
    # writes a job's fields. The board calls them under its lock (``JobBoard.apply``),
    # which keeps its counts and indexes after each.

    def adopt(self, export_id: str, created: datetime, now: float, wall: datetime) -> None:
        """QUEUED -> WAITING: follow an export saved by the last run (or listed); its
        age counts towards ``export_timeout``, and its first check is now."""
        self.move(JobState.QUEUED, JobState.WAITING)
        self.status = ExportStatus(export_id, ExportPhase.PENDING, "saved")
        self.created_at = self.first_attempt_at = now - max(0.0, (wall - created).total_seconds())
        self.created_wall = created
        self.adopted = True
        self.next_check_at = now

    def follow_saved(self, export_id: str, created_at: datetime | None, *, listed: bool = False) -> None:
        """QUEUED, still: an earlier run's export of this window (saved in its STATE, or
        ``listed`` by the provider) is to be followed, not created again."""
        self.adopt_id, self.adopt_created_at, self.adopt_listed = export_id, created_at, listed

    def abandon(self) -> None:
        """An earlier window of its pair failed: it must never be emitted (a DOWNLOADING
        job is cancelled when its download ends)."""
        self.abandoned = True

    def request_wake(self) -> bool:
        """WAITING, still: the webhook says its export is ready; check it now. False
        when it is not WAITING (nothing to wake)."""
        if self._state is not JobState.WAITING:
            return False
        self.wake_requested = True
        return True

    def wake_answered(self) -> None:
        """A check is going out: it answers the wake-up (a later one asks again)."""
        self.wake_requested = False

    def use_workdir(self, path: Path) -> None:
        """Its files download into ``path`` (removed by :meth:`release`)."""
        self.workdir = path

    def ended_failed(self) -> int:
        """WAITING, still: its export ended failed; returns how many of its exports did."""
        self.failures += 1
        return self.failures

    def begin_create(self, now: float) -> None:
        """QUEUED -> CREATING: its create request goes out."""
        self.move(JobState.QUEUED, JobState.CREATING)
        if self.first_attempt_at is None:
            self.first_attempt_at = now

    def refused(self) -> None:
        """CREATING -> QUEUED: the provider refused the create (busy); it waits its turn."""
        self.move(JobState.CREATING, JobState.QUEUED)

    def created(self, status: ExportStatus, now: float, wall: datetime, first_check_in: float) -> None:
        """CREATING -> WAITING: the provider accepted the export (one not yet DONE)."""
        self.move(JobState.CREATING, JobState.WAITING)
        self._accepted(status, now, wall, first_check_in)

    def _accepted(self, status: ExportStatus, now: float, wall: datetime, first_check_in: float) -> None:
        self.status = status
        self.created_at = now
        self.created_wall = wall
        self.next_check_at = now + first_check_in

    def checked(self, status: ExportStatus, next_check_at: float) -> None:
        """WAITING, still: a status check said not yet; the next one is due then."""
        if self._state is not JobState.WAITING:
            raise IllegalTransition(f"{self.label}: checked while {self._state.value}")
        self.status = status
        self.checks += 1
        self.next_check_at = next_check_at

    def created_done(self, status: ExportStatus, now: float, wall: datetime) -> None:
        """CREATING -> DOWNLOADING: the provider accepted the export already DONE."""
        self.move(JobState.CREATING, JobState.DOWNLOADING)
        self._accepted(status, now, wall, 0.0)
        self.download_started_at = now

    def begin_download(self, status: ExportStatus, now: float) -> None:
        """WAITING -> DOWNLOADING: a status check said DONE."""
        self.move(JobState.WAITING, JobState.DOWNLOADING)
        self.status = status
        self.checks += 1
        self.download_started_at = now

    def downloaded(self, paths: list[Path], size: int) -> bool:
        """DOWNLOADING -> READY, or CANCELLED when its window was given up on meanwhile
        (then its files are removed). True when READY."""
        self.files = paths
        self.bytes_downloaded = size
        if self.abandoned:
            self.cancel()
            return False
        self.move(JobState.DOWNLOADING, JobState.READY)
        return True

    def requeue(self, expected: JobState) -> None:
        """WAITING/DOWNLOADING -> QUEUED: the window needs a new export; everything the
        old one set goes with it."""
        self.move(expected, JobState.QUEUED)
        self.status = None
        self.created_at = self.created_wall = self.download_started_at = None
        self.adopted = False
        self.checks = 0
        self.next_check_at = 0.0
        self.release()

    def fail(self, error: BaseException, expected: Expected) -> None:
        """Any live state -> FAILED, with the error that ended it."""
        self.move(expected, JobState.FAILED)
        self.error = error

    def cancel(self, *, release: bool = True) -> None:
        """Any live state -> CANCELLED; its files, if any, are removed (unless the
        engine's stop removes them after the consumer let go: ``release=False``)."""
        self.move(self._state, JobState.CANCELLED)
        if release:
            self.release()

    def split(
        self, pieces: Sequence[Window], expected: JobState, *, range_refused: bool = False
    ) -> tuple[ExportJob, ...]:
        """WAITING (failed past its budget), QUEUED (too long) or CREATING (its create
        refused for its range: ``range_refused``, the halves get no second cut) -> SPLIT:
        shorter windows take its place, in order (returned, to be queued first)."""
        self.move(expected, JobState.SPLIT)
        self.parts = tuple(
            ExportJob(
                stream=self.stream, window=w, seq=self.seq, account=self.account, range_refused=range_refused
            )
            for w in pieces
        )
        return self.parts

    def consume(self) -> None:
        """READY -> CONSUMED: the consumer emitted its records; its files go."""
        self.move(JobState.READY, JobState.CONSUMED)
        self.release()

    @property
    def export_id(self) -> str | None:
        return self.status.export_id if self.status else None

    @property
    def label(self) -> str:
        if self.account:
            return f"{self.stream.name} of '{self.account}' {self.window}"
        return f"{self.stream.name} {self.window}"

    @property
    def pair(self) -> tuple[str, str]:
        """(stream, account): the unit whose windows are emitted in order."""
        return self.stream.name, self.account

    @property
    def account_failed(self) -> bool:
        """Whether it FAILED because its whole account did (bad token, settings, hours):
        nothing about this window; every not-finished job of the account failed alike."""
        return self._state is JobState.FAILED and is_account_failure(self.error)

    def elapsed(self, now: float | None = None) -> float:
        if self.created_at is None:
            return 0.0
        return (now if now is not None else time.monotonic()) - self.created_at

    def release(self) -> None:
        """Remove the job's downloaded files (after its records were emitted, or on failure)."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.files = []
