"""An iterator made ahead in a thread: a pipeline stage for Arrow's C++ work.

Why: Arrow's CSV parser, its compute kernels and its Parquet writer run without the GIL,
so on two cores the columnar path's stages overlap -- the next block is parsed while
this one is converted (``csv_columns.read_blocks``), and the next is converted while this
one is written (``singer/batch/columnar.py``) -- and each block's rows reach the loader
sooner.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def ahead(items: Iterator[T]) -> Generator[T, None, None]:
    """``items``, each made in a thread of its own while the caller uses the one before.

    At most one item waits, so memory stays at two items. The thread is the only one to
    advance ``items`` (a generator may keep counters on its reader), and ends before
    this does: when the caller stops early, it stops at its next item and closes
    ``items`` (its clean-up runs in that thread). An exception ``items`` raises reaches
    the caller in its place, after the items before it."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def make() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            handoff.put(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator stopped early runs its clean-up here, in its thread

    maker = threading.Thread(target=make, name="blocks-ahead", daemon=True)
    maker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while maker.is_alive():  # a put waiting on a full queue: make room, then join
            try:
                handoff.get_nowait()
            except queue.Empty:
                pass
            maker.join(timeout=0.05)
