"""FileBatches: small members go to the pool in batches, one job for many files.

A pool job per member costs more than hashing or writing a typical small file (a future, a
queue hand-off, a worker wake-up and lock traffic on every side, ~20 µs each), so members are
grouped up to BATCH_FILES files or BATCH_BYTES bytes and a worker handles a whole group. Each
member still gets its own future. The byte budget is charged when a batch is handed over, so
members waiting for their batch hold no budget and drain() can never wait on them. At most
MAX_BATCHES are in flight: a member's future and bookkeeping cost ~1 KiB, more than the budget
charges for an empty file, and a few batches per worker keep every worker busy. A batch of tiny
files (``is_tiny_batch``) is handled on the caller's thread: handing it over costs more than
it saves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from .._workers import ITEM_OVERHEAD, ByteBudget, Submit, is_tiny_batch, start
from .members import Data

BATCH_FILES = 64
BATCH_BYTES = 1024 * 1024
MAX_BATCHES = 16

Work = Callable[[str, Data, int, int], str]
_Item = tuple[Future[str], str, Data, int, int]


class FileBatches:
    def __init__(self, submit: Submit | None, budget: ByteBudget, work: Work) -> None:
        self._submit = submit
        self._budget = budget
        self._work = work
        self._items: list[_Item] = []
        self._cost = 0
        self._slots = threading.BoundedSemaphore(MAX_BATCHES)

    def add(self, path: str, data: Data, mode: int, mtime: int) -> Future[str]:
        """Queue ``work(path, data, mode, mtime)``; its future resolves once the batch ran."""
        future: Future[str] = Future()
        self._items.append((future, path, data, mode, mtime))
        self._cost += len(data) + ITEM_OVERHEAD
        if len(self._items) >= BATCH_FILES or self._cost >= BATCH_BYTES:
            self.flush()
        return future

    def flush(self) -> None:
        """Hand the pending batch to the pool (inline in sequential mode)."""
        if not self._items:
            return
        items, cost = self._items, self._cost
        self._items, self._cost = [], 0
        self._slots.acquire()
        self._budget.acquire(cost)
        start(None if is_tiny_batch(len(items), cost) else self._submit, self._run, items, cost)

    def discard(self) -> None:
        """Drop the pending batch: the operation failed and nothing will wait for it."""
        self._items, self._cost = [], 0

    def _run(self, items: list[_Item], cost: int) -> None:
        try:
            for future, path, data, mode, mtime in items:
                try:
                    future.set_result(self._work(path, data, mode, mtime))
                except BaseException as exc:  # kept for the member's sha256() to raise
                    future.set_exception(exc)
        finally:
            self._budget.release(cost)
            self._slots.release()
