"""Writeback: puts the staging tree on disk while it is still being extracted.

A tree is committed only once it is on disk (see commit). Left to the kernel, new files are
written out 30 s after they were made, or once dirty pages fill a tenth of memory, so the sync
before the commit wrote the whole tree while nothing else ran: ~20 % of the time to extract
the stdlib tree here, and most of it on a Raspberry Pi's SD card, which writes ~20 MB/s.
Instead, each time EVERY bytes have been written to the tree (a file counts FILE_COST more
for its inode and directory entry), a thread of its own calls syncfs while the extraction
goes on; finish() waits for it and syncs what is left, which completes the write-back.

One file descriptor, opened with the staging tree, serves every call: Linux reports a
write-back error to syncfs only through descriptors opened before the error, so one opened
at the commit would miss an error in the kernel's own write-back of a long extraction.
"""

from __future__ import annotations

import os
import threading

from .syscalls import syncfs

EVERY = 32 * 1024 * 1024
FILE_COST = 4096


class Writeback:
    def __init__(self, tree: str, *, early: bool = True) -> None:
        """``early=False``: no thread; finish() alone writes the tree out (sequential mode)."""
        self._tree = tree
        self._fd = os.open(tree, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        self._early = early
        self._dirty = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def wrote(self, nbytes: int) -> None:
        """Count ``nbytes`` written to the tree; called from any thread. An addition lost to
        two threads racing (``+=`` is not atomic) only delays the next early sync."""
        self._dirty += nbytes
        if self._dirty >= EVERY and self._early:
            self._start()

    def _start(self) -> None:
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            if busy or self._fd < 0 or self._dirty < EVERY:
                return  # what is written meanwhile goes with the next sync
            self._dirty = 0
            self._thread = threading.Thread(
                target=self._sync_early, args=(self._fd,), name="arcman-writeback"
            )
            self._thread.start()

    def _sync_early(self, fd: int) -> None:
        try:
            if not syncfs(fd, self._tree):
                self._early = False  # no syncfs: finish() syncs everything at once
        except OSError as exc:
            self._error = exc  # raised by finish(): the tree must not be committed
            self._early = False

    def finish(self) -> None:
        """Return once everything written to the tree is on disk; raise OSError if writing
        any of it back failed, then or in an early sync."""
        try:
            self._join()
            if self._error is not None:
                raise self._error
            if not syncfs(self._fd, self._tree) and hasattr(os, "sync"):
                os.sync()
        finally:
            self.close()

    def close(self) -> None:
        """Wait for an early sync still running, and release the descriptor (idempotent)."""
        with self._lock:
            fd, self._fd = self._fd, -1  # and no early sync starts from now on
        self._join()
        if fd >= 0:
            os.close(fd)

    def _join(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()
