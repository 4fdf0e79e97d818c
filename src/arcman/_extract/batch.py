"""FileBatches: small members go to the pool in batches, one job for many files.

A pool job per member costs more than hashing or writing a typical small file (a future, a
queue hand-off, a worker wake-up and lock traffic on every side, ~20 µs each), so members are
grouped up to BATCH_FILES files or BATCH_BYTES bytes and a worker handles a whole group. The
group has one future, not one per member: a member's ``Digest`` is ready once the job has
appended it to the batch's list, which the consumer checks without a lock. A failure ends the
batch: it is the failure of that member and of those after it in the batch (the operation is
failing anyway). The byte budget is charged when a batch is handed over, so members waiting for
their batch hold no budget and drain() can never wait on them. At most MAX_BATCHES are in
flight: a member's bookkeeping costs more than the budget charges for an empty file, and a few
batches per worker keep every worker busy. A batch of tiny files (``is_tiny_batch``) is handled
on the caller's thread, where handing it to a worker costs more than it saves, unless a
``Remote`` (the helper process of _child.py) takes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol

from .._stats import PhaseClock
from .._workers import ITEM_OVERHEAD, ByteBudget, Submit, is_tiny_batch, start
from .members import Data

if TYPE_CHECKING:
    from .files import Mtime

BATCH_FILES = 64
BATCH_BYTES = 1024 * 1024
MAX_BATCHES = 16

Work = Callable[[str, Data, int, "Mtime"], bytes]
"""``work(path, data, mode, mtime)``: handle one member and return its raw SHA-256."""
Item = tuple[str, Data, int, "Mtime"]
Reply = Callable[[list[bytes], "BaseException | None", float], None]


class Remote(Protocol):
    """Does ``work`` for whole batches of tiny files outside this interpreter's GIL."""

    def submit(self, items: list[Item], reply: Reply) -> bool:
        """Take ``items`` (True) and handle them in order, then call ``reply(digests,
        failure, seconds)`` from another thread, with the digests of the members handled
        before a failure; or leave them to the caller (False)."""


class _Batch:
    __slots__ = ("digests", "items", "job", "owned")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.digests: list[bytes] = []  # appended by the job, in the items' order
        self.job: Future[None] | None = None  # set when the batch is handed over
        # Taken once (acquire without blocking) by whoever gives the batch's budget back: the
        # job as it starts, the helper's reply, or flush() when handing it over was cut short
        # (Ctrl-C): the budget is returned exactly once, and a job that finds it taken does
        # nothing.
        self.owned = threading.Lock()


class Digest:
    """One member's SHA-256, due once its batch has been handled that far."""

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def ready(self) -> bool:
        """Whether value() would return at once (False for a member that failed)."""
        return len(self._batch.digests) > self._index

    def value(self) -> bytes:
        """The raw digest, waiting for the batch if needed; raises the member's failure."""
        batch = self._batch
        if len(batch.digests) <= self._index:
            if batch.job is None:
                raise RuntimeError("a member's digest was awaited before its batch was flushed")
            batch.job.result()  # raises what ended the batch at or before this member
        return batch.digests[self._index]


class FileBatches:
    def __init__(
        self, submit: Submit | None, budget: ByteBudget, work: Work, clock: PhaseClock,
        phase: str, remote: Remote | None = None,
    ) -> None:
        """``work`` runs in batches, their time added to ``phase`` (one clock call a batch);
        batches of tiny files go to ``remote`` when it takes them."""
        self._submit = submit
        self._remote = remote
        self._budget = budget
        self._work = work
        self._clock = clock
        self._phase = phase
        self._batch = _Batch()
        self._cost = 0
        self._slots = threading.BoundedSemaphore(MAX_BATCHES)

    def add(self, path: str, data: Data, mode: int, mtime: Mtime) -> Digest:
        """Queue ``work(path, data, mode, mtime)``; its digest is due once the batch ran."""
        batch = self._batch
        digest = Digest(batch, len(batch.items))
        batch.items.append((path, data, mode, mtime))
        self._cost += len(data) + ITEM_OVERHEAD
        if len(batch.items) >= BATCH_FILES or self._cost >= BATCH_BYTES:
            self.flush()
        return digest

    def flush(self) -> None:
        """Hand the pending batch to the pool (inline in sequential mode)."""
        batch, cost = self._batch, self._cost
        if not batch.items:
            return
        self._batch, self._cost = _Batch(), 0
        self._slots.acquire()
        self._budget.acquire(cost)
        try:
            tiny = is_tiny_batch(len(batch.items), cost)
            sent = None
            if tiny and self._remote is not None:
                sent = self._send(self._remote, batch, cost)
            if sent is None:
                sent = start(None if tiny else self._submit, self._run, batch, cost)
        except BaseException:
            # Ctrl-C before the batch was handed over (a helper starting, a job being
            # queued): nothing else would give its budget back, and drain() would wait for
            # it for good. A helper that took it is stopped before drain() waits.
            self._give_back(batch, cost)
            raise
        batch.job = sent

    def _give_back(self, batch: _Batch, cost: int) -> None:
        """Return the batch's budget and slot, unless whoever owns the batch did."""
        if batch.owned.acquire(blocking=False):
            self._release(cost)

    def _release(self, cost: int) -> None:
        self._budget.release(cost)
        self._slots.release()

    def discard(self) -> None:
        """Drop the pending batch: the operation failed and nothing will wait for it."""
        self._batch, self._cost = _Batch(), 0

    def _send(self, remote: Remote, batch: _Batch, cost: int) -> Future[None] | None:
        """The batch's job if ``remote`` takes it."""
        job: Future[None] = Future()

        def reply(digests: list[bytes], failure: BaseException | None, seconds: float) -> None:
            try:
                batch.digests.extend(digests)
                batch.items = []
                self._clock.add(self._phase, seconds)
            finally:
                self._give_back(batch, cost)
            if failure is None:
                job.set_result(None)
            else:
                job.set_exception(failure)

        return job if remote.submit(batch.items, reply) else None

    def _run(self, batch: _Batch, cost: int) -> None:
        if not batch.owned.acquire(blocking=False):
            return  # given back by flush(): the operation is failing
        try:
            work, done = self._work, batch.digests.append
            with self._clock.measure(self._phase):
                for path, data, mode, mtime in batch.items:
                    done(work(path, data, mode, mtime))
        finally:
            batch.items = []  # the data is not held until every digest has been read
            self._release(cost)  # owned since it started
