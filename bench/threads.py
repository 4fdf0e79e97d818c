"""Where the wall time of an arcman run goes, thread by thread, and what waking a thread costs.

arcman's wall time on a corpus is often well above its CPU time over the cores: on the 2-core
machine of the committed report, creating the stdlib tree at --level 1 keeps ~1.5 of the 2 cores
busy although the main thread, two workers and the output thread all have work. This script
shows where the rest goes, from Linux's per-thread scheduler statistics
(``/proc/thread-self/schedstat``): for one in-process create or extract, each thread's time on a
CPU, its time runnable but waiting for one (the run queue), and how often it was switched in.
A thread that gives up the GIL for a system call, waits on a job queue or on a future, and is
woken again, pays a wake-up each time; on a virtual machine whose idle CPUs halt, a wake-up on
another CPU costs far more than on bare metal. The script measures that cost too, two threads
waking each other in turn (free to run on two CPUs, then pinned to one), and the cost of a
page of memory touched for the first time (a virtual machine whose host backs its memory on
demand, or takes freed memory back, pays a fault to the host for it).

Nothing is compared with the peers here (``run.py`` does that): each round is one operation,
its threads' figures summed by role, medians over ``--rounds``. The helper process that reads
or writes batches of tiny files (``_child.py``) is another process: its time is not counted.

Usage: python bench/threads.py CORPUS_DIR [--op create|extract] [--format tar.gz] [--level N]
[--rounds 5] [--out DIR]  (Linux only; prints a Markdown table)
"""

from __future__ import annotations

import argparse
import mmap
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import arcman

PING_PONGS = 2000


def _schedstat(tid: int | str = "thread-self") -> tuple[int, int, int]:
    """A thread's nanoseconds on a CPU, nanoseconds runnable but waiting for one, and times
    switched in (the calling thread's by default)."""
    path = f"/proc/{tid}/schedstat" if tid == "thread-self" else f"/proc/self/task/{tid}/schedstat"
    with open(path) as f:
        on_cpu, waiting, switches = f.read().split()
    return int(on_cpu), int(waiting), int(switches)


def _role(thread: threading.Thread) -> str:
    """arcman-worker_0 and arcman-worker_1 are one role, "arcman-worker"."""
    return "main" if thread is threading.main_thread() else thread.name.rstrip("0123456789_")


class ThreadLedger:
    """Each thread's schedstat over one operation, summed by role: threads alive before it
    (the pool's, started by an earlier operation) from their figures at its start and end,
    threads started during it from their start."""

    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        self._lock = threading.Lock()

    def _add(self, role: str, start: tuple[int, int, int], end: tuple[int, int, int]) -> None:
        with self._lock:
            row = self.rows[role]
            for i in range(3):
                row[i] += end[i] - start[i]

    def measure(self, operation: Callable[[], object]) -> float:
        """Run ``operation``; return its wall time in seconds."""
        original = threading.Thread.run
        started: dict[int, tuple[int, int, int]] = {}  # by native id, threads started meanwhile
        ended: set[int] = set()

        ledger = self

        def run(self: threading.Thread) -> None:
            tid = threading.get_native_id()
            started[tid] = _schedstat()
            try:
                original(self)
            finally:
                ended.add(tid)
                ledger._add(_role(self), started[tid], _schedstat())

        before = {t.native_id: _schedstat(t.native_id) for t in threading.enumerate()
                  if t.native_id is not None}
        threading.Thread.run = run  # type: ignore[method-assign]
        try:
            began = time.perf_counter()
            operation()
            wall = time.perf_counter() - began
        finally:
            threading.Thread.run = original  # type: ignore[method-assign]
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None or tid in ended:
                continue
            start = before[tid] if tid in before else started.get(tid)
            if start is not None:
                self._add(_role(thread), start, _schedstat(tid))
        return wall


def ping_pong(pin: int | None) -> float:
    """Microseconds for two threads to wake each other once each (a round trip), ``pin``:
    the one CPU both run on, or None for any."""
    ping, pong = threading.Event(), threading.Event()
    previous = os.sched_getaffinity(0)

    def other() -> None:
        if pin is not None:
            os.sched_setaffinity(0, {pin})
        for _ in range(PING_PONGS):
            ping.wait()
            ping.clear()
            pong.set()

    if pin is not None:
        os.sched_setaffinity(0, {pin})
    try:
        thread = threading.Thread(target=other)
        thread.start()
        began = time.perf_counter()
        for _ in range(PING_PONGS):
            ping.set()
            pong.wait()
            pong.clear()
        elapsed = time.perf_counter() - began
        thread.join()
    finally:
        os.sched_setaffinity(0, previous)
    return elapsed / PING_PONGS * 1e6


def first_touch(size: int = 256 * 1024 * 1024) -> float:
    """Microseconds to touch a page of ``size`` bytes of fresh anonymous memory."""
    page = mmap.PAGESIZE
    memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        began = time.perf_counter()
        for offset in range(0, size, page):
            memory[offset] = 1
        return (time.perf_counter() - began) / (size // page) * 1e6
    finally:
        memory.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path, help="the tree to archive (and extract)")
    parser.add_argument("--op", choices=("create", "extract"), default="create")
    parser.add_argument("--format", default="tar.gz", help="archive extension (default tar.gz)")
    parser.add_argument("--level", type=int, default=None, help="compression level")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="where the archive and the extraction go (default: a temp dir)")
    args = parser.parse_args()
    if not Path("/proc/thread-self/schedstat").exists():
        print("needs Linux's /proc/thread-self/schedstat", file=sys.stderr)
        return 2

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="arcman-threads-", dir=args.out))
    archive = str(scratch / f"corpus.{args.format}")
    dest = str(scratch / "extracted")
    config = arcman.ArchiveConfig(compression_level=args.level)
    results: list[tuple[float, dict[str, list[int]]]] = []
    try:
        with arcman.ArchiveManager(config) as manager:
            manager.create_archive(args.corpus, archive)  # warm-up, and the archive to extract

            def operation() -> None:
                if args.op == "create":
                    manager.create_archive(args.corpus, archive)
                else:
                    manager.extract_archive(archive, dest)

            for _ in range(args.rounds):
                ledger = ThreadLedger()
                results.append((ledger.measure(operation), ledger.rows))
                if args.op == "extract":
                    shutil.rmtree(dest, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0))
    walls = [wall for wall, _ in results]
    print(f"{args.op} {args.corpus.name} as .{args.format}"
          f"{'' if args.level is None else f' at level {args.level}'}: {args.rounds} rounds, "
          f"{cpus} CPUs, median wall {statistics.median(walls) * 1000:.0f} ms\n")
    print("| thread | on a CPU ms | waiting for a CPU ms | switches | waiting per switch us |")
    print("|---|---|---|---|---|")
    # Each role's median over the rounds of each figure; most CPU first; their sums last.
    medians = {
        role: [statistics.median(rows.get(role, [0, 0, 0])[i] for _, rows in results)
               for i in range(3)]
        for role in {role for _, rows in results for role in rows}
    }
    table = sorted(medians.items(), key=lambda item: -item[1][0])
    total = [sum(figures[i] for figures in medians.values()) for i in range(3)]
    for role, (on_cpu, waiting, switches) in [*table, ("all threads", total)]:
        per = waiting / switches / 1e3 if switches else 0.0
        print(f"| {role} | {on_cpu / 1e6:.0f} | {waiting / 1e6:.0f} | {switches:.0f} | {per:.0f} |")
    busy = total[0] / 1e9 / statistics.median(walls) / cpus
    print(f"\nCPUs busy: {busy:.0%} of {cpus} over the median wall time (sums of medians).")
    pins = [None, 0] if cpus > 1 else [0]
    for pin in pins:
        trips = statistics.median(ping_pong(pin) for _ in range(5))
        where = "any CPU" if pin is None else f"pinned to CPU {pin}"
        print(f"Two threads waking each other ({where}): {trips:.0f} us a round trip.")
    touches = [first_touch() for _ in range(3)]
    print(f"A page of fresh memory touched: {statistics.median(touches):.1f} us "
          f"({min(touches):.1f}-{max(touches):.1f}; a loop of Python included).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
