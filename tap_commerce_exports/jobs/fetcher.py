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
from functools import partial
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

    def start(self, job: ExportJob, status: ExportStatus) -> None:
        """``job``'s export is DONE (a status check said so): WAITING -> DOWNLOADING, and
        fetch its files."""
        self.board.apply(job, partial(job.begin_download, status, self.clock()))
        self.submit(job)

    def submit(self, job: ExportJob) -> None:
        """Fetch the files of ``job``, DOWNLOADING already."""
        try:
            future = self._job_pool.submit(self._download_job, job)
        except RuntimeError:  # the pool was shut down: the sync stopped meanwhile
            self._never_started(job)
            return
        # a download still queued when the sync stops is dropped by shutdown(): its job
        # must not stay DOWNLOADING for good
        future.add_done_callback(lambda done: self._never_started(job) if done.cancelled() else None)

    def _never_started(self, job: ExportJob) -> None:
        """The sync stopped before ``job``'s download began: CANCELLED, as any download
        that ends after the stop."""
        with self.board.cv:
            if job.state is JobState.DOWNLOADING:
                self.board.apply(job, job.cancel)

    def stop(self) -> None:
        """Cut downloads in flight (no pool thread outlives the stop) and drop the queued."""
        self.downloader.cancel()

    def shutdown(self) -> None:
        self._job_pool.shutdown(wait=False, cancel_futures=True)
        self._file_pool.shutdown(wait=False, cancel_futures=True)

    def _download_job(self, job: ExportJob) -> None:
        board = self.board
        try:
            status = job.status
            assert status is not None
            workdir = self.workdir / f"job-{id(job):x}"
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
            job.use_workdir(workdir)
            provider = board.lane(job).provider
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
                                f"{job.label}: the file URLs of export {job.export_id} keep "
                                "expiring; try again"
                            )
                        current = provider.file_urls(status, refresh=True)
                        if len(current) != len(urls):
                            raise ExportFailed(f"{job.label}: export {job.export_id} changed its file list")
                    return current[index]

            ext = provider.facts.extension
            paths = [workdir / f"part-{i:05d}.{ext}" for i in range(len(urls))]
            if len(urls) <= 1:
                sizes = [self._download_file(job, i, urls[i], paths[i], fresh_url) for i in range(len(urls))]
            else:
                futures = [
                    self._file_pool.submit(self._download_file, job, i, urls[i], paths[i], fresh_url)
                    for i in range(len(urls))
                ]
                sizes = [f.result() for f in futures]
            with board.cv:
                if job.state is not JobState.DOWNLOADING:  # failed or stopped meanwhile
                    job.release()
                    return
                if board.stopped:  # the sync stopped while it downloaded: never handed over
                    board.apply(job, job.cancel)
                    return
                ready: list[bool] = []
                board.apply(job, lambda: ready.append(job.downloaded(paths, sum(sizes))))
            if not ready[0]:
                return  # its window was given up on meanwhile: cancelled, files removed
            LOGGER.info("%s: downloaded %d file(s), %d bytes", job.label, len(paths), sum(sizes))
        except BaseException as exc:  # noqa: BLE001 - every way a download ends is a state
            self._download_failed(job, exc)

    def _download_failed(self, job: ExportJob, exc: BaseException) -> None:
        """A download ended with ``exc``. After the sync stopped, or once an earlier window
        of its pair failed (it is never emitted), that is no failure of its own: CANCELLED,
        as a download that ends then does."""
        board = self.board
        # one decision, the lock held throughout: a stop or an abandon between the check
        # and the failure would otherwise make the outcome depend on thread timing
        with board.cv:
            if job.state is JobState.DOWNLOADING and (board.stopped or job.abandoned):
                board.apply(job, job.cancel)
                return
            if isinstance(exc, UserError):
                if job.adopted and not is_account_failure(exc):  # e.g. its files were deleted since
                    board.requeue(job, JobState.DOWNLOADING, f"from the last run can't be downloaded ({exc})")
                    return
                board.failed(job, exc, JobState.DOWNLOADING)
                return
            board.fail_window(job, ExportFailed(f"{job.label}: download failed: {exc}"), JobState.DOWNLOADING)

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
