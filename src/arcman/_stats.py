"""Thread-safe operation statistics: counts, bytes and per-phase timing summaries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

PHASES = (
    "collection",
    "hashing",
    "compression",
    "spooling",
    "decompression",
    "parsing",
    "verification",
    "extraction",
    "commit",
)


class PhaseClock:
    """Busy time per phase for one operation, added to from any thread.

    Stages overlap in a pipeline, so a phase's figure is the time its work kept a thread
    busy (summed over threads), not a slice of the wall clock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        with self._lock:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 6) for k, v in self.seconds.items()}


@dataclass
class _Summary:
    count: int = 0
    total: float = 0.0
    min: float = float("inf")
    max: float = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def as_dict(self) -> dict[str, float]:
        if not self.count:
            return {"count": 0, "total": 0.0, "avg": 0.0, "min": 0.0, "max": 0.0}
        return {
            "count": self.count,
            "total": round(self.total, 6),
            "avg": round(self.total / self.count, 6),
            "min": round(self.min, 6),
            "max": round(self.max, 6),
        }


class StatsRecorder:
    """Aggregates finished operations; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._operations: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._phases = {p: _Summary() for p in PHASES}
        self._wall = _Summary()
        self._files = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._parallel = 0
        self._sequential = 0

    def record(
        self,
        kind: str,
        *,
        parallel: bool,
        files: int,
        bytes_in: int,
        bytes_out: int,
        wall: float,
        phases: dict[str, float],
    ) -> None:
        with self._lock:
            self._operations[kind] = self._operations.get(kind, 0) + 1
            self._files += files
            self._bytes_in += bytes_in
            self._bytes_out += bytes_out
            self._wall.add(wall)
            if parallel:
                self._parallel += 1
            else:
                self._sequential += 1
            for phase, seconds in phases.items():
                self._phases.setdefault(phase, _Summary()).add(seconds)

    def record_failure(self, kind: str) -> None:
        with self._lock:
            self._failures[kind] = self._failures.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            wall = self._wall.total
            return {
                "operations": dict(self._operations),
                "operations_total": sum(self._operations.values()),
                "failures": dict(self._failures),
                "files": self._files,
                "bytes_in": self._bytes_in,
                "bytes_out": self._bytes_out,
                "parallel_operations": self._parallel,
                "sequential_operations": self._sequential,
                "phases": {name: s.as_dict() for name, s in self._phases.items()},
                "wall_time": self._wall.as_dict(),
                "throughput_bytes_per_s": round(self._bytes_in / wall, 1) if wall else 0.0,
            }
