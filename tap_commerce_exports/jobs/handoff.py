"""Handing finished jobs to the Singer layer, in window order per (stream, account).

Why a part of its own: the engine finishes exports in whatever order the provider does,
but a bookmark may only pass a window once every earlier window of its stream and
account was emitted. So jobs wait here until they are the head of their (stream,
account) pair; a SPLIT head gives its place to its halves; a FAILED head ends its pair
(the later windows are cancelled) unless its whole account failed, in which case each
of the account's failed jobs is still handed over, in order. The consumer's thread
runs this (it is the process's main thread, so its waits stay short: a SIGTERM is only
acted on when it wakes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial

from tap_commerce_exports.jobs.board import JobBoard
from tap_commerce_exports.jobs.job import ExportJob, JobState

Pair = tuple[str, str]
#: Seconds the consumer's thread waits at most before it looks again.
CONSUMER_WAKE = 0.1


class OrderedHandoff:
    """Yields READY and FAILED jobs in window order per (stream, account)."""

    def __init__(self, board: JobBoard) -> None:
        self.board = board

    def deliver(
        self,
        jobs: Iterable[ExportJob],
        on_exports: Callable[[], None] | None,
        on_idle: Callable[[], object] | None = None,
    ) -> Iterator[ExportJob]:
        """Each of ``jobs`` (and the halves of split ones) once READY or FAILED, in its
        pair's window order. A READY job's files are removed, and it is CONSUMED, when
        the caller comes back for the next one. ``on_exports`` runs on this thread
        (without the lock) soon after an export was created, adopted, replaced or split;
        ``on_idle`` (without the lock) before each wait for a job."""
        board = self.board
        per_pair: dict[Pair, deque[ExportJob]] = {}
        for each in sorted(jobs, key=lambda j: j.seq):
            per_pair.setdefault(each.pair, deque()).append(each)
        # The pairs whose head may be deliverable: all at first, then only those the
        # board saw move (O(changes), not a look at every pair on every wake-up).
        candidates: dict[Pair, None] = dict.fromkeys(per_pair)
        while per_pair:
            with board.cv:
                job: ExportJob | None = None
                while job is None:
                    if board.fatal is not None:
                        raise board.fatal
                    if board.exports_changed and on_exports is not None:
                        board.exports_changed = False
                        board.cv.release()
                        try:
                            on_exports()
                        finally:
                            board.cv.acquire()
                        continue
                    candidates.update(dict.fromkeys(board.moved_pairs))
                    board.moved_pairs.clear()
                    job = _ready_head(per_pair, candidates)
                    if job is None:
                        if on_idle is not None:
                            board.cv.release()
                            try:
                                on_idle()
                            finally:
                                board.cv.acquire()
                            if board.moved_pairs or board.fatal is not None:
                                continue  # something moved meanwhile: look before waiting
                            if board.exports_changed and on_exports is not None:
                                continue
                        board.cv.wait(CONSUMER_WAKE)
                per_pair[job.pair].popleft()
            try:
                yield job
            finally:
                job.release()
                self._after_use(job, per_pair)
                candidates[job.pair] = None  # its next head may be ready already

    def _after_use(self, job: ExportJob, per_pair: dict[Pair, deque[ExportJob]]) -> None:
        """The caller is done with ``job``: consume it, or end its pair after a failure."""
        board = self.board
        with board.cv:
            queue = per_pair.get(job.pair)
            if job.state is JobState.FAILED:
                # the caller or the engine failed this window: later windows of the pair
                # must not be emitted (the bookmark can't pass this one)
                board.abandon_after(job)
                rest = _failed_with_account(queue) if job.account_failed else None
                if rest:
                    per_pair[job.pair] = rest
                else:
                    per_pair.pop(job.pair, None)
            else:
                if job.state is JobState.READY:  # (stop() may have cancelled it)
                    board.apply(job, job.consume)
                if queue is not None and not queue:
                    per_pair.pop(job.pair, None)
            board.cv.notify_all()

    def fail(self, job: ExportJob, exc: BaseException) -> None:
        """The consumer could not use the READY ``job`` it holds (e.g. a bad file)."""
        self.board.apply(job, partial(job.fail, exc, JobState.READY))


def _ready_head(per_pair: dict[Pair, deque[ExportJob]], candidates: dict[Pair, None]) -> ExportJob | None:
    """A candidate pair's head that is READY or FAILED (a SPLIT head gives way to its
    parts); candidates looked at and not ready leave the set (a move brings them back)."""
    while candidates:
        pair = next(iter(candidates))
        pending = per_pair.get(pair)
        if not pending:
            del candidates[pair]
            continue
        while pending[0].state is JobState.SPLIT and pending[0].parts:
            pending.extendleft(reversed(pending.popleft().parts or ()))
        head = pending[0]
        if head.state in (JobState.READY, JobState.FAILED):
            return head
        del candidates[pair]
    return None


def _failed_with_account(queue: deque[ExportJob] | None) -> deque[ExportJob]:
    """What is left to hand over of a pair after its account failed: its FAILED jobs."""
    rest: deque[ExportJob] = deque()
    todo = deque(queue or ())
    while todo:
        job = todo.popleft()
        if job.state is JobState.SPLIT and job.parts:
            todo.extendleft(reversed(job.parts))
        elif job.state is JobState.FAILED:
            rest.append(job)
    return rest
