"""Aggregated progress: many worker threads report bytes, the callback sees one ordered series."""

from __future__ import annotations

import threading

from ._config import ArchiveConfig


class CallbackFailed(BaseException):
    """A user's progress callback raised ``error``. A BaseException, so that it passes the
    pipelines' own error handling, which would take an OSError or a ValueError for the
    archive's or a source file's; ArchiveManager re-raises ``error`` itself. Cleanup handlers
    (``except BaseException``, ``finally``) still run on the way."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class Progress:
    """Sums bytes reported from any thread and forwards ``(done, total)`` to one callback.

    The callbacks run under a lock, so they are never called concurrently; ``done`` only grows
    and never passes ``total``; ``finish()`` always ends the series at ``(total, total)``.
    A total of None is not known in advance (an archive read from a pipe): the callback
    then gets 0 as the total until ``finish()`` reports ``(done, done)``.
    The item callback, when configured, hears the name of each member as it is reached.
    """

    def __init__(self, config: ArchiveConfig, total: int | None) -> None:
        self._callback = config.progress_callback
        self._on_item = config.progress_item_callback
        self._lock = threading.Lock()
        self._known = total is not None
        self.total = max(total or 0, 0)
        self.done = 0

    def advance(self, nbytes: int, item: str | None = None) -> None:
        callback = self._callback if nbytes > 0 else None
        on_item = self._on_item if item is not None else None
        if callback is None and on_item is None:
            return
        with self._lock:
            try:
                if on_item is not None and item is not None:
                    on_item(item)
                if callback is not None:
                    self.done += nbytes
                    if self._known:
                        self.done = min(self.total, self.done)
                    callback(self.done, self.total)
            except Exception as exc:
                raise CallbackFailed(exc) from exc

    def reach(self, position: int, item: str | None = None) -> None:
        """advance() to an absolute amount done, such as a position in the archive being read
        (from one thread: the one that reads it)."""
        if self._callback is not None or self._on_item is not None:  # called for every member
            self.advance(position - self.done, item)

    def finish(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            report = not self._known or self.done != self.total or self.total == 0
            if not self._known:
                self._known, self.total = True, self.done
            if report:
                self.done = self.total
                try:
                    self._callback(self.total, self.total)
                except Exception as exc:
                    raise CallbackFailed(exc) from exc
