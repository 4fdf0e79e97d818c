"""Aggregated progress: many worker threads report bytes, the callback sees one ordered series."""

from __future__ import annotations

import threading

from ._config import ProgressCallback


class Progress:
    """Sums bytes reported from any thread and forwards ``(done, total)`` to one callback.

    The callback runs under a lock, so it is never called concurrently; ``done`` only grows
    and never passes ``total``; ``finish()`` always ends the series at ``(total, total)``.
    """

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self._lock = threading.Lock()
        self.total = max(total, 0)
        self.done = 0

    def advance(self, nbytes: int) -> None:
        if self._callback is None or nbytes <= 0:
            return
        with self._lock:
            self.done = min(self.total, self.done + nbytes)
            self._callback(self.done, self.total)

    def finish(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            if self.done != self.total or self.total == 0:
                self.done = self.total
                self._callback(self.total, self.total)
