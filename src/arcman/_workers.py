"""One way to start a job: on the shared pool, or inline when the operation runs sequentially.

Stages take a ``submit`` (the pool's, or None for sequential mode) so that the same code path
produces the same bytes with parallelization on or off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
Submit = Callable[..., Future[Any]]


def start(
    submit: Submit | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> Future[T]:
    if submit is not None:
        future: Future[T] = submit(fn, *args, **kwargs)
        return future
    done: Future[T] = Future()
    try:
        done.set_result(fn(*args, **kwargs))
    except BaseException as exc:
        done.set_exception(exc)
    return done


def members_share(budget: int) -> int:
    """Of ``ArchiveConfig.memory_budget``: member data read ahead (create) or being written and
    hashed (extract). The other half goes to codec blocks in flight (a quarter), the archive
    bytes queued for the output thread (an eighth), and per-member records and spools."""
    return budget // 2


def codec_share(budget: int) -> int:
    """Of the budget: blocks being compressed, or decompressed pieces read ahead."""
    return budget // 4


def output_share(budget: int) -> int:
    """Of the budget: archive bytes queued for the output thread."""
    return budget // 8


# What one in-flight item costs beyond its data (future, work item, bookkeeping), charged to
# the budget so that a million tiny files cannot queue a million futures.
ITEM_OVERHEAD = 4096

# A batch of files this small on average is handled by the thread that made it, not a worker.
# Per file it is mostly Python whichever thread runs it; only the syscalls and the hashing could
# overlap, and for tiny files they are shorter than a worker waiting to win the GIL back after
# every syscall. 20,000 files of 10-200 bytes: reading them for create took 0.70 s with worker
# batches and 0.60 s without; extracting them, 1.14 s and 0.84 s. (Extraction now gives such
# batches to a helper interpreter, which has a GIL of its own: _child.py.)
TINY_FILE_AVERAGE = 4096


def is_tiny_batch(files: int, cost: int) -> bool:
    """Whether a batch of ``files`` charged ``cost`` (data + ITEM_OVERHEAD each) is tiny."""
    return cost < files * (ITEM_OVERHEAD + TINY_FILE_AVERAGE)


# The longest a wait of the main thread on another thread lasts before it looks again: CPython
# runs a Ctrl-C's handler between bytecodes, so a signal that lands after the last look but
# before a lock wait without a timeout begins is acted on only once that wait ends, and the
# wait for a stalled stream's data (or for a stalled output to drain) does not end.
WAKE_INTERVAL = 0.1
# How long a failed or interrupted operation lets a read or write of a pipe or a socket that is
# under way return before it leaves the thread doing it to finish on its own (a daemon, which
# the process's exit does not wait for). A flowing local pipe takes or fills a piece in
# milliseconds, and the thread has then let go of everything, as it has for a file; a stalled
# one costs this once, well within what Ctrl-C may take.
STALL_GRACE = 0.2


class ByteBudget:
    """Bounds the bytes handed to workers: acquire() blocks the producer, workers release().

    A request larger than the whole budget is let through when nothing else is in flight, so
    one big item never deadlocks.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self._cond:
            while self._used and self._used + n > self._limit:
                self._cond.wait(WAKE_INTERVAL)
            self._used += n

    def drain(self) -> None:
        """Wait until every acquired byte has been released (all work in flight is done)."""
        with self._cond:
            while self._used:
                self._cond.wait(WAKE_INTERVAL)

    def release(self, n: int) -> None:
        with self._cond:
            self._used -= n
            self._cond.notify_all()
