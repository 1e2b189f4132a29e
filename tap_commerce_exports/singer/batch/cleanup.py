"""Batch files the NEXT run removes: this pipeline's finished files whose window ends at
or before the bookmark it starts from (that bookmark came back from the loader after it
loaded them).

Never anything else: not another pipeline's files (their names carry another pipeline
id), not another format's (another suffix), not a ``.partial`` (a file being written,
by whichever run: a failed window's own partial is removed by that window), not a link
or a folder. A file that cannot be removed is said in one line, never a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from tap_commerce_exports.config.batch import BatchSettings
from tap_commerce_exports.singer.batch.naming import file_head, window_end

LOGGER = logging.getLogger("tap_commerce_exports.batch")


def remove_loaded(
    settings: BatchSettings, stream: str, account: str, bookmark: datetime, pipeline: str
) -> int:
    """Remove ``pipeline``'s finished batch files of this stream and account whose window
    ends at or before ``bookmark``. Other streams', accounts', pipelines', formats' and
    prefixes' files stay, and every ``.partial``."""
    root = settings.root
    if not root.is_dir():
        return 0
    head = file_head(settings, stream, account)
    removed = 0
    for path in _candidates(root, head):
        end = window_end(settings, path.name, head, pipeline)
        if end is None or end > bookmark:
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOGGER.warning("stream '%s': batch file %s not removed (%s)", stream, path.name, exc.strerror)
    if removed:
        LOGGER.info(
            "stream '%s': removed %d batch file(s) the loader already took (up to the bookmark)",
            stream,
            removed,
        )
    return removed


def _candidates(root: Path, head: str) -> Iterable[Path]:
    for entry in os.scandir(root):
        if entry.name.startswith(head + ".") and entry.is_file(follow_symlinks=False):
            yield Path(entry.path)
