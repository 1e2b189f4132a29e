"""Fetching a finished export's files: the download pool, fresh URLs, retries.

Why a part of its own: downloads take long and run beside everything else (the engine
thread must go on creating and polling), and they fail in their own ways. A signed URL
expires (ask the provider for fresh ones, a few times per file); a transfer is cut or
short (try again, a few times, pausing longer each time); an export adopted from the
last run may have lost its files (its window gets a new export). Each job downloads
into a private directory; a job whose window was given up on while it downloaded is
cancelled, never handed to the consumer.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from tap_commerce_exports.errors import ExportFailed, UserError
from tap_commerce_exports.http.download import DownloadError, FileDownloader, TruncatedDownload, UrlExpired
from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.failures import is_account_failure
from tap_commerce_exports.jobs.job import ExportJob, JobState
from tap_commerce_exports.providers.base import ExportStatus

LOGGER = logging.getLogger("tap_commerce_exports.jobs")


class FileFetcher:
    """Downloads the files of DONE exports on a pool; moves jobs to READY."""

    def __init__(
        self,
        board: JobBoard,
        downloader: FileDownloader,
        *,
        workdir: Path,
        clock: Callable[[], float],
        job_workers: int,
        file_workers: int,
        download_attempts: int,
        url_refreshes: int,
        retry_pause: float,
    ) -> None:
        self.board = board
        self.downloader = downloader
        self.workdir = workdir
        self.clock = clock
        self.download_attempts = download_attempts
        self.url_refreshes = url_refreshes
        self.retry_pause = retry_pause
        self._job_pool = cf.ThreadPoolExecutor(max(1, job_workers), "export-download")
        self._file_pool = cf.ThreadPoolExecutor(max(1, file_workers), "export-file")

    def start(self, job: ExportJob, status: ExportStatus, expected: JobState) -> None:
        """``job``'s export is DONE: move it to DOWNLOADING and fetch its files."""
        with self.board.cv:
            job.status = status
            self.board.move(job, expected, JobState.DOWNLOADING)
            job.download_started_at = self.clock()
        try:
            future = self._job_pool.submit(self._download_job, job)
        except RuntimeError:  # the pool was shut down: the sync stopped meanwhile
            self._never_started(job)
            return
        # a download still queued when the sync stops is dropped by shutdown(): its job
        # must not stay DOWNLOADING for good
        future.add_done_callback(lambda done: self._never_started(job) if done.cancelled() else None)

    def stop(self) -> None:
        """Cut downloads in flight (no pool thread outlives the stop) and drop the queued."""
        self.downloader.cancel()

    def shutdown(self) -> None:
        self._job_pool.shutdown(wait=False, cancel_futures=True)
        self._file_pool.shutdown(wait=False, cancel_futures=True)

    def _never_started(self, job: ExportJob) -> None:
        """The sync stopped before ``job``'s download began: CANCELLED, as any download
        that ends after the stop."""
        with self.board.cv:
            if job.state is JobState.DOWNLOADING:
                self.board.move(job, JobState.DOWNLOADING, JobState.CANCELLED)

    def _download_job(self, job: ExportJob) -> None:
        board = self.board
        outcome: BaseException | None = None
        paths: list[Path] = []
        size = 0
        try:
            paths, size = self._fetch(job)
        except BaseException as exc:  # noqa: BLE001 (judged below, under the lock)
            outcome = exc
        # One decision, under the lock, whichever thread moved first: a job failed
        # meanwhile (its account) stays failed; a window given up on meanwhile (an
        # earlier window of its pair failed, or the sync stopped) ends CANCELLED however
        # its download ended -- a download cut by the stop is not this window's failure.
        with board.cv:
            if job.state is not JobState.DOWNLOADING:
                job.release()
                return
            if job.abandoned or board.stopped:
                board.move(job, JobState.DOWNLOADING, JobState.CANCELLED)
                job.release()
                return
            if outcome is None:
                job.files = paths
                job.bytes_downloaded = size
                board.move(job, JobState.DOWNLOADING, JobState.READY)
            elif isinstance(outcome, UserError):
                if job.adopted and not is_account_failure(outcome):  # e.g. its files were deleted since
                    why = f"from the last run can't be downloaded ({outcome})"
                    board.requeue(job, JobState.DOWNLOADING, why)
                else:
                    board.failed(job, outcome, JobState.DOWNLOADING)
            else:
                failure = ExportFailed(f"{job.label}: download failed: {outcome}")
                board.fail_window(job, failure, JobState.DOWNLOADING)
        if outcome is None:
            LOGGER.info("%s: downloaded %d file(s), %d bytes", job.label, len(paths), size)

    def _fetch(self, job: ExportJob) -> tuple[list[Path], int]:
        """Every file of ``job``'s export into its own directory: (paths, bytes)."""
        status = job.status
        assert status is not None
        job.workdir = self.workdir / f"job-{id(job):x}"
        job.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        provider = self.board.lane(job).provider
        urls = provider.file_urls(status)
        lock = threading.Lock()
        current = list(urls)
        refreshes = 0

        def fresh_url(index: int, stale: str) -> str:
            nonlocal current, refreshes
            with lock:
                if current[index] == stale:
                    refreshes += 1
                    if refreshes > self.url_refreshes * max(1, len(urls)):
                        raise ExportFailed(
                            f"{job.label}: the file URLs of export {job.export_id} keep expiring; try again"
                        )
                    current = provider.file_urls(status, refresh=True)
                    if len(current) != len(urls):
                        raise ExportFailed(f"{job.label}: export {job.export_id} changed its file list")
                return current[index]

        ext = provider.facts.extension
        paths = [job.workdir / f"part-{i:05d}.{ext}" for i in range(len(urls))]
        if len(urls) <= 1:
            sizes = [self._download_file(job, i, urls[i], paths[i], fresh_url) for i in range(len(urls))]
        else:
            futures = [
                self._file_pool.submit(self._download_file, job, i, urls[i], paths[i], fresh_url)
                for i in range(len(urls))
            ]
            sizes = [f.result() for f in futures]
        return paths, sum(sizes)

    def _download_file(
        self, job: ExportJob, index: int, url: str, dest: Path, fresh_url: Callable[[int, str], str]
    ) -> int:
        failures = 0
        while True:
            if self.board.stopped:
                raise ExportFailed(f"{job.label}: sync stopped")
            try:
                return self.downloader.download(url, dest, self.downloader.budget_for(job))
            except UrlExpired as exc:
                LOGGER.info("%s: %s; asking for a fresh URL", job.label, exc)
                url = fresh_url(index, url)
            except (TruncatedDownload, DownloadError) as exc:
                failures += 1
                if failures >= self.download_attempts:
                    raise ExportFailed(
                        f"{job.label}: file {index + 1} of export {job.export_id} failed "
                        f"{failures} times ({exc})"
                    ) from None
                LOGGER.warning("%s: %s; retrying (%d/%d)", job.label, exc, failures, self.download_attempts)
                self.downloader.sleep(self.retry_pause * failures)
