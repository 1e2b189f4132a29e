"""BATCH mode of the sync: each window's records into batch files instead of RECORD
messages (the files themselves: ``singer/batch.py``).

Beside the RECORD path, chosen once per run: :class:`ExportSync` calls :meth:`emit`
where it would call its own ``_emit``, and writes the window's STATE after it returns,
exactly as in RECORD mode, so the bookmark rule stays in one place. What this adds:
every file is announced (BATCH message, flushed) as soon as it is complete, a new
SCHEMA (CSV columns the schema did not know) first closes and announces the files
before it, and a window that fails removes only its unfinished file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tap_commerce_exports.singer.account_property import ACCOUNT_PROPERTY
from tap_commerce_exports.singer.batch import BatchFileSet, BatchSettings, new_run_id, remove_loaded
from tap_commerce_exports.singer.record_sink import RecordWriter, output_maps, record_sink
from tap_commerce_exports.state import read_bookmark

if TYPE_CHECKING:
    from tap_commerce_exports.jobs.job import ExportJob
    from tap_commerce_exports.singer.sync import ExportSync, StreamProgress


class BatchWindows:
    """The BATCH writer of one run (one run id names all its files)."""

    def __init__(self, sync: ExportSync, settings: BatchSettings) -> None:
        self.sync = sync
        self.settings = settings
        self.run_id = new_run_id()

    def emit(self, job: ExportJob, p: StreamProgress) -> None:
        """The window's records into one file set per output stream, each file announced
        by a BATCH message once complete; the caller writes the STATE after the last. A
        file not complete when the window fails is removed; see singer/batch.py."""
        batch = self.settings
        sync = self.sync
        sets: list[BatchFileSet] = []
        parts: dict[str, int] = {}

        def announce(stream: str, manifest: list[str]) -> None:
            # Each file as soon as it is complete, flushed: the loader loads it while
            # the next one is written. The STATE comes after the window's last.
            sync.output.batch(stream, batch.encoding, manifest)
            sync.output.flush()

        def open_sets() -> Callable[[dict[str, Any]], None]:
            sets[:] = [
                BatchFileSet(
                    batch,
                    stream=m.stream_alias,
                    schema=m.transformed_schema,
                    account=sync.account_of(job),
                    start=job.window.start,
                    end=job.window.end,
                    run_id=self.run_id,
                    announce=announce,
                    part=parts.get(m.stream_alias, 0),
                )
                for m in output_maps(sync.tap.mapper, p.stream.name)
            ]
            return self._sink(p, sets)

        def complete() -> None:
            for file_set in sets:
                file_set.complete()
                parts[file_set.stream] = file_set.next_part

        write = open_sets()

        def new_columns() -> None:
            # The SCHEMA that adds columns must precede the files that carry them.
            nonlocal write
            complete()
            sync._write_schema(p)  # noqa: SLF001 - the sync's own SCHEMA path
            write = open_sets()

        account = sync.account_of(job)
        try:
            for record in sync._read(job, p, new_columns):  # noqa: SLF001  # hot loop: one call per record
                record[ACCOUNT_PROPERTY] = account  # after the reader: a file's value never wins
                write(record)
            complete()
        except BaseException:
            for file_set in sets:
                file_set.discard()
            raise

    def _sink(self, p: StreamProgress, sets: list[BatchFileSet]) -> RecordWriter:
        """Selection, then each stream map, into its file set: as RECORD output does."""
        maps = output_maps(self.sync.tap.mapper, p.stream.name)
        return record_sink(p.deselected, list(zip(maps, [s.write for s in sets], strict=True)))

    def remove_loaded(self, streams: Iterable[Any]) -> None:
        """Batch files of earlier runs that the incoming bookmark proves loaded."""
        sync = self.sync
        for stream, account in ((s, a) for s in streams for a in sync.providers):
            bookmark = read_bookmark(sync.state, stream.name, account)
            if bookmark is None:
                continue
            for m in output_maps(sync.tap.mapper, stream.name):
                remove_loaded(self.settings, m.stream_alias, account, bookmark)
