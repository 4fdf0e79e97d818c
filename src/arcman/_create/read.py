"""ContentReader: reads and hashes file contents in worker threads, ahead of the writer.

Files up to SMALL_FILE_LIMIT are read whole and hashed by a worker (and, for zip, deflated by
the ``prepare`` hook) while the writer is still busy with earlier members; hard links, with
nothing to read, are checked (files.check_link) in the same batches. Consecutive small
files go to a worker in batches (up to BATCH_FILES files or BATCH_BYTES bytes): a pool job costs
~30 us of the consumer's time, more than reading a tiny file does. A batch of tiny files
(``is_tiny_batch``) is read by the consumer itself when it reaches it, and so is a tree that
makes a single batch: a small archive starts no worker. Once the tree has shown it has more than
a few, batches of tiny files go to a helper process instead (_child.LazyHelper), which reads
them beside this interpreter's GIL; if it dies, its batches are read here. For a tar, a batch
read here or by the helper comes as finished records and manifest lines (``Records``,
files.record_batch), which the writer appends whole: on 20,000 tiny files, handling them member
by member took a third of this thread's time (CPU 434 -> 281 ms), and this thread sets the pace
of such a run. Read-ahead is bounded by a byte budget that the consuming thread reserves in
archive order, so the writer's next member is always already reserved and nothing can deadlock,
and by WINDOW items (a batch, a large file or a non-file each): a few batches per worker keep
the workers busy, and a budget's worth of empty files in flight would cost ~10 MB of objects for
no speed. Larger files are streamed in chunks by the consumer itself (``LargeFile``), so memory
stays flat however big a file is.
The iteration completes when every entry has been handed over, in collection order.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._child import ChildProcess, LazyHelper
from .._errors import SourceError
from .._manifest import FILE, HARDLINK
from .._stats import PhaseClock
from .._workers import ITEM_OVERHEAD, Submit, is_tiny_batch, start
from .collect import SourceEntry
from .files import check_link, check_unchanged, open_source, read_whole, record_batch

if TYPE_CHECKING:
    from .files import Read, Recorded, RecordItem

SMALL_FILE_LIMIT = 1024 * 1024
BATCH_FILES = 64
BATCH_BYTES = 1024 * 1024
CHUNK_SIZE = 1024 * 1024
WINDOW = 64


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


@dataclass(slots=True)
class Records:
    """A batch of small files made into finished tar records (header, content, padding, back
    to back) and their manifest lines, by files.record_batch."""

    entries: list[SourceEntry]
    data: bytes
    lines: str


class LargeFile:
    """A file streamed in chunks by the consumer; ``sha256`` is known once chunks() is done."""

    def __init__(
        self, path: str, entry: SourceEntry, follow_symlinks: bool, clock: PhaseClock
    ) -> None:
        self.entry = entry
        self._path = path
        self._fd = open_source(path, follow_symlinks)
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
                    # A swap says so.
                    check_unchanged(self._fd, self.entry.size, self.entry.stamp, self._path)
                    raise SourceError(f"{self._path!r} shrank while it was being read", self._path)
                self._hash.update(chunk)
                self._clock.add("hashing", time.perf_counter() - started)
                remaining -= len(chunk)
                yield chunk
                if self.on_chunk is not None:
                    self.on_chunk(len(chunk))
            check_unchanged(self._fd, self.entry.size, self.entry.stamp, self._path)
            if os.read(self._fd, 1):
                raise SourceError(f"{self._path!r} grew while it was being read", self._path)
        except OSError as exc:
            raise SourceError(f"cannot read {self._path!r}: {exc.strerror}", self._path) from exc
        finally:
            self.close()
        self.sha256 = self._hash.hexdigest()

    def close(self) -> None:
        # Forgotten before it is closed: a Ctrl-C landing between the two would otherwise
        # have the next close() close the number again, by then perhaps another file's.
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


Content = Loaded | LargeFile | Skipped | None
# What a batch of small files (and hard links: None once checked) comes to.
Batch = list[Loaded | Skipped | None] | Records


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
        owner_names: Callable[[int, int], tuple[str, str]] | None = None,
    ) -> None:
        """``owner_names`` (tar only): batches handled inline or by the helper are made into
        Records, with these user and group names in their headers."""
        self._root = root
        self._entries = entries
        self._submit = submit
        self._budget = budget
        self._skip = skip_errors
        self._follow = follow_symlinks
        self._clock = clock
        self._prepare = prepare
        self._owner_names = owner_names
        self._follow_arg = "follow" if follow_symlinks else ""
        # Hard links ride in batches, as empty files do, unless skipping: a batch made into
        # Records could not leave out a link whose file an earlier batch skipped.
        self._links_batched = not skip_errors
        self._helper = (
            LazyHelper("records", self._follow_arg, root) if owner_names is not None
            else LazyHelper("read", self._follow_arg)
        )
        self._stopping = False

    def __iter__(self) -> Iterator[tuple[SourceEntry, Content] | Records]:
        try:
            yield from self._contents()
        except BaseException:
            self._stop_helper(at_once=True)
            raise
        self._stop_helper(at_once=False)

    def _contents(self) -> Iterator[tuple[SourceEntry, Content] | Records]:
        window: deque[tuple[list[SourceEntry], Future[Batch] | None, int]] = deque()
        reserved = 0
        upcoming = iter(self._entries)
        pending: SourceEntry | None = next(upcoming, None)
        while pending is not None or window:
            # Reserve and submit in archive order while the budget allows (always at least one).
            while pending is not None and len(window) < WINDOW:
                if not self._is_small(pending):
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
                    pending is not None and self._is_small(pending)
                    and len(batch) < BATCH_FILES
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
                # A helper process reads tiny batches beside this thread once it is ready.
                inline = is_tiny_batch(len(batch), cost) or (pending is None and not window)
                helper = None
                if inline and self._submit is not None:  # sequential mode starts none
                    helper = self._helper.for_batch(len(batch), last=pending is None)
                job: Future[Batch] | None = None
                if helper is not None:
                    job = self._send(helper, batch)
                elif not inline:
                    job = start(self._submit, self._load_batch, batch)
                window.append((batch, job, cost))
                reserved += cost
            entries, job, cost = window.popleft()
            if job is not None:
                yield from _handed(entries, job.result())
            elif self._is_small(entries[0]):
                yield from _handed(entries, self._inline(entries))
            else:
                entry = entries[0]
                if entry.kind == FILE:
                    yield entry, self._open_large(entry)
                else:
                    yield entry, self._check_link(entry) if entry.kind == HARDLINK else None
            reserved -= cost

    def _open_large(self, entry: SourceEntry) -> LargeFile | Skipped:
        path = os.path.join(self._root, entry.path)
        try:
            return LargeFile(path, entry, self._follow, self._clock)
        except SourceError as exc:
            if not self._skip:
                raise
            return Skipped(str(exc))

    def _is_small(self, entry: SourceEntry) -> bool:
        """Whether ``entry`` goes in a batch: a small file, or a hard link (see __init__)."""
        if entry.kind == FILE:
            return entry.size <= SMALL_FILE_LIMIT
        return entry.kind == HARDLINK and self._links_batched

    def _check_link(self, entry: SourceEntry) -> Skipped | None:
        path = os.path.join(self._root, entry.path)
        try:
            check_link(path, entry.stamp, self._follow)
        except SourceError as exc:
            if not self._skip:
                raise
            return Skipped(str(exc))
        return None

    def _inline(self, entries: list[SourceEntry]) -> Batch:
        """A batch handled by this thread: made into Records where it can be, else read."""
        if self._owner_names is None:
            return self._load_batch(entries)
        with self._clock.measure("hashing"):
            answer = record_batch(self._follow_arg, self._root, self._wire(entries))
        return self._answered(entries, answer)

    def _wire(self, entries: list[SourceEntry]) -> list[RecordItem]:
        names = self._owner_names
        assert names is not None
        return [
            (e.path, e.size, e.stamp, e.mode, e.uid, e.gid, e.mtime, *names(e.uid, e.gid),
             e.target if e.kind == HARDLINK else None)
            for e in entries
        ]

    def _send(self, helper: ChildProcess, batch: list[SourceEntry]) -> Future[Batch]:
        job: Future[Batch] = Future()

        def reply(answer: Recorded | None, ended: OSError | None, seconds: float) -> None:
            try:
                if answer is None:  # the helper is gone: this thread reads the batch instead
                    if not self._stopping:
                        job.set_result(self._inline(batch))
                    return
                self._clock.add("hashing", seconds)
                job.set_result(self._answered(batch, answer))
            except BaseException as exc:
                job.set_exception(exc)

        if self._owner_names is not None:
            helper.submit(self._wire(batch), reply)
        else:
            root = self._root
            helper.submit([(os.path.join(root, e.path), e.size, e.stamp) for e in batch], reply)
        return job

    def _answered(self, entries: list[SourceEntry], answer: Recorded) -> Batch:
        """What a batch's answer (read_batch's or record_batch's) is to the writer."""
        if isinstance(answer, tuple):
            return Records(entries, *answer)
        root = self._root
        return self._prepared([
            self._loaded(os.path.join(root, entry.path), item)
            for entry, item in zip(entries, answer, strict=True)
        ])

    def _loaded(self, path: str, item: Read | None) -> Loaded | Skipped | None:
        if item is None:  # a hard link, checked
            return None
        if isinstance(item, str):
            if not self._skip:
                raise SourceError(item, path)
            return Skipped(item)
        return Loaded(*item)

    def _stop_helper(self, *, at_once: bool) -> None:
        self._stopping = True
        self._helper.stop(at_once=at_once)

    def _load_batch(self, entries: list[SourceEntry]) -> list[Loaded | Skipped | None]:
        with self._clock.measure("hashing"):
            loaded = [self._load(entry) for entry in entries]
        return self._prepared(loaded)

    def _prepared(
        self, loaded: list[Loaded | Skipped | None]
    ) -> list[Loaded | Skipped | None]:
        if self._prepare is not None:
            with self._clock.measure("compression"):  # zip's members are deflated here
                for item in loaded:
                    if isinstance(item, Loaded):
                        item.prepared = self._prepare(item.data)
        return loaded

    def _load(self, entry: SourceEntry) -> Loaded | Skipped | None:
        if entry.kind == HARDLINK:
            return self._check_link(entry)
        path = os.path.join(self._root, entry.path)
        try:
            data = read_whole(path, entry.size, entry.stamp, self._follow)
        except SourceError as exc:
            if not self._skip:
                raise
            return Skipped(str(exc))
        return Loaded(data, hashlib.sha256(data).hexdigest())


def _handed(
    entries: list[SourceEntry], batch: Batch
) -> Iterator[tuple[SourceEntry, Content] | Records]:
    """A batch as the reader hands it on: its Records whole, or each file with its content."""
    if isinstance(batch, Records):
        yield batch
    else:
        yield from zip(entries, batch, strict=True)

