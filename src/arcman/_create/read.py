"""ContentReader: reads and hashes file contents in worker threads, ahead of the writer.

Files up to SMALL_FILE_LIMIT are read whole and hashed by a worker (and, for zip, deflated by
the ``prepare`` hook) while the writer is still busy with earlier members. Consecutive small
files go to a worker in batches (up to BATCH_FILES files or BATCH_BYTES bytes): a pool job
costs ~30 us of the consumer's time, more than reading a tiny file does. A batch of tiny files
(``is_tiny_batch``) is read by the consumer itself when it reaches it, and so is a tree that
makes a single batch: a small archive starts no worker. Read-ahead is bounded by a byte budget
that the consuming thread reserves in archive order, so the writer's next member is always
already reserved and nothing can deadlock, and by WINDOW items (a batch, a large file or a
non-file each): a few batches per worker keep the workers busy, and a budget's worth of empty
files in flight would cost ~10 MB of objects for no speed. Larger files are streamed in chunks
by the consumer itself (``LargeFile``), so memory stays flat however big a file is.
The iteration completes when every entry has been handed over, in collection order.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .._errors import SourceError
from .._manifest import FILE
from .._stats import PhaseClock
from .._workers import ITEM_OVERHEAD, Submit, is_tiny_batch, start
from .collect import SourceEntry
from .entries import change_stamp

SMALL_FILE_LIMIT = 1024 * 1024
BATCH_FILES = 64
BATCH_BYTES = 1024 * 1024
CHUNK_SIZE = 1024 * 1024
WINDOW = 64
# O_NONBLOCK: a FIFO put in a file's place would block the open until a writer came, before
# it could be refused; regular files ignore the flag.
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


@dataclass(slots=True)
class Loaded:
    """A small file's whole content, its SHA-256, and what ``prepare`` made of it (set by the
    batch, timed apart)."""

    data: bytes
    sha256: str
    prepared: Any = None


@dataclass(slots=True)
class Skipped:
    reason: str


class LargeFile:
    """A file streamed in chunks by the consumer; ``sha256`` is known once chunks() is done."""

    def __init__(
        self, path: str, entry: SourceEntry, follow_symlinks: bool, clock: PhaseClock
    ) -> None:
        self.entry = entry
        self._path = path
        self._fd = _open(path, follow_symlinks)
        self._hash = hashlib.sha256()
        self._clock = clock
        self.sha256 = ""
        self.on_chunk: Callable[[int], None] | None = None  # told each chunk's size once used

    def chunks(self) -> Iterator[bytes]:
        remaining = self.entry.size
        try:
            while remaining > 0:
                started = time.perf_counter()
                chunk = os.read(self._fd, min(CHUNK_SIZE, remaining))
                if not chunk:
                    _check_unchanged(self._fd, self.entry, self._path)  # a swap says so
                    raise SourceError(f"{self._path!r} shrank while it was being read", self._path)
                self._hash.update(chunk)
                self._clock.add("hashing", time.perf_counter() - started)
                remaining -= len(chunk)
                yield chunk
                if self.on_chunk is not None:
                    self.on_chunk(len(chunk))
            _check_unchanged(self._fd, self.entry, self._path)
            if os.read(self._fd, 1):
                raise SourceError(f"{self._path!r} grew while it was being read", self._path)
        except OSError as exc:
            raise SourceError(f"cannot read {self._path!r}: {exc.strerror}", self._path) from exc
        finally:
            self.close()
        self.sha256 = self._hash.hexdigest()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


Content = Loaded | LargeFile | Skipped | None


class ContentReader:
    def __init__(
        self,
        root: str,
        entries: Iterable[SourceEntry],
        *,
        submit: Submit | None,
        budget: int,
        skip_errors: bool,
        follow_symlinks: bool,
        clock: PhaseClock,
        prepare: Callable[[bytes], Any] | None = None,
    ) -> None:
        self._root = root
        self._entries = entries
        self._submit = submit
        self._budget = budget
        self._skip = skip_errors
        self._follow = follow_symlinks
        self._clock = clock
        self._prepare = prepare

    def __iter__(self) -> Iterator[tuple[SourceEntry, Content]]:
        window: deque[tuple[list[SourceEntry], Future[list[Loaded | Skipped]] | None, int]]
        window = deque()
        reserved = 0
        upcoming = iter(self._entries)
        pending: SourceEntry | None = next(upcoming, None)
        while pending is not None or window:
            # Reserve and submit in archive order while the budget allows (always at least one).
            while pending is not None and len(window) < WINDOW:
                if not _is_small(pending):
                    # Charged too, so a long run of directories cannot grow the window unbounded.
                    if window and reserved + ITEM_OVERHEAD > self._budget:
                        break
                    window.append(([pending], None, ITEM_OVERHEAD))
                    reserved += ITEM_OVERHEAD
                    pending = next(upcoming, None)
                    continue
                batch: list[SourceEntry] = []
                cost = 0
                while (
                    pending is not None and _is_small(pending) and len(batch) < BATCH_FILES
                    and (not batch or cost + pending.size <= BATCH_BYTES)
                    and (not (window or batch) or reserved + cost + pending.size + ITEM_OVERHEAD
                         <= self._budget)
                ):
                    batch.append(pending)
                    cost += pending.size + ITEM_OVERHEAD
                    pending = next(upcoming, None)
                if not batch:
                    break
                # A tiny batch, or the last one with nothing before it in flight (a small
                # archive), is read here: a worker would only make the consumer wait for it.
                inline = is_tiny_batch(len(batch), cost) or (pending is None and not window)
                job = None if inline else start(self._submit, self._load_batch, batch)
                window.append((batch, job, cost))
                reserved += cost
            entries, job, cost = window.popleft()
            if job is not None:
                yield from zip(entries, job.result(), strict=True)
            elif _is_small(entries[0]):
                yield from zip(entries, self._load_batch(entries), strict=True)
            else:
                entry = entries[0]
                yield entry, self._open_large(entry) if entry.kind == FILE else None
            reserved -= cost

    def _open_large(self, entry: SourceEntry) -> LargeFile | Skipped:
        path = os.path.join(self._root, entry.path)
        try:
            return LargeFile(path, entry, self._follow, self._clock)
        except SourceError as exc:
            if not self._skip:
                raise
            return Skipped(str(exc))

    def _load_batch(self, entries: list[SourceEntry]) -> list[Loaded | Skipped]:
        with self._clock.measure("hashing"):
            loaded = [self._load(entry) for entry in entries]
        if self._prepare is not None:
            with self._clock.measure("compression"):  # zip's members are deflated here
                for item in loaded:
                    if isinstance(item, Loaded):
                        item.prepared = self._prepare(item.data)
        return loaded

    def _load(self, entry: SourceEntry) -> Loaded | Skipped:
        path = os.path.join(self._root, entry.path)
        try:
            fd = _open(path, self._follow)
            try:
                data = _read_exactly(fd, entry, path)
            finally:
                os.close(fd)
        except SourceError as exc:
            if not self._skip:
                raise
            return Skipped(str(exc))
        return Loaded(data, hashlib.sha256(data).hexdigest())


def _is_small(entry: SourceEntry) -> bool:
    return entry.kind == FILE and entry.size <= SMALL_FILE_LIMIT


def _open(path: str, follow_symlinks: bool) -> int:
    """Open a source file for reading: not through a symlink unless following them, and never
    blocking (O_NONBLOCK: a FIFO put in a file's place would wait for a writer)."""
    flags = _OPEN_FLAGS | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        return os.open(path, flags)
    except OSError as exc:
        raise SourceError(f"cannot read {path!r}: {exc.strerror}", path) from exc


def _check_unchanged(fd: int, entry: SourceEntry, path: str) -> None:
    """Raise SourceError unless the open file is still the one collection saw: a regular file
    of its size and change_stamp. Checked once the file is read (one fstat), so that it also
    catches a rewrite in place at the same size while it was read, whose bytes would be part
    old and part new, a version of the file that never existed (GNU tar: "file changed as we
    read it"); and a swap for a FIFO or another file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != entry.size or (
        change_stamp(st) != entry.stamp
    ):
        raise SourceError(f"{path!r} changed while the archive was being made", path)


def _read_exactly(fd: int, entry: SourceEntry, path: str) -> bytes:
    """The whole small file, checked with _check_unchanged."""
    size = entry.size
    try:
        data = os.read(fd, size + 1) if size else os.read(fd, 1)
        while len(data) < size:
            more = os.read(fd, size + 1 - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise SourceError(f"cannot read {path!r}: {exc.strerror}", path) from exc
    _check_unchanged(fd, entry, path)  # before the size: a swap says so
    if len(data) != size:
        raise SourceError(f"{path!r} changed size while it was being read", path)
    return data
