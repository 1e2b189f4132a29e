"""One export job: a stream over one window, and where it is in its life.

Life of a job (``JobState``)::

    QUEUED --create--> WAITING --status DONE--> DOWNLOADING --files on disk--> READY
       |                  |                          |                          |
       +--------------- FAILED <--------------------+                     (consumed,
    CANCELLED (its stream failed earlier, or the sync stopped)              files removed)
"""

from __future__ import annotations

import enum
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tap_commerce_exports.providers.base import ExportStatus
from tap_commerce_exports.providers.streams import ExportStreamDefinition
from tap_commerce_exports.windows import Window


class JobState(enum.Enum):
    QUEUED = "queued"
    WAITING = "waiting"
    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


IN_FLIGHT = frozenset({JobState.WAITING, JobState.DOWNLOADING})


@dataclass(eq=False)
class ExportJob:
    """A stream's export over one window, from request to files on disk."""

    stream: ExportStreamDefinition
    window: Window
    seq: int  # position of this window within its stream
    state: JobState = JobState.QUEUED
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

    @property
    def export_id(self) -> str | None:
        return self.status.export_id if self.status else None

    @property
    def label(self) -> str:
        return f"{self.stream.name} {self.window}"

    def elapsed(self, now: float | None = None) -> float:
        if self.created_at is None:
            return 0.0
        return (now if now is not None else time.monotonic()) - self.created_at

    def release(self) -> None:
        """Remove the job's downloaded files (after its records were emitted, or on failure)."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.files = []
