"""Load and concurrency: one manager shared by many threads; progress reporting under load."""

from __future__ import annotations

import gc
import itertools
import os
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager
from arcman._metadata import ArchiveMetadata
from helpers import FORMATS, writable

THREADS = 16
OPERATIONS = 200


def _open_fds() -> int:
    gc.collect()  # a file an earlier test left to the collector is not this test's
    return len(os.listdir("/proc/self/fd"))


def _small_tree(root: Path, seed: int) -> Path:
    rng = random.Random(seed)
    for i in range(rng.randrange(3, 12)):
        sub = root / f"d{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}").write_bytes(rng.randbytes(rng.randrange(0, 5000)))
    (root / "link").symlink_to("d0")
    return root


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc/self/fd")
def test_shared_manager_under_16_threads(tmp_path: Path) -> None:
    trees = [_small_tree(tmp_path / f"src{i}", i) for i in range(4)]
    formats = writable(FORMATS)
    ready = []
    with ArchiveManager() as setup:
        for i, ext in enumerate(formats):
            ready.append(tmp_path / f"ready{i}{ext}")
            setup.create_archive(trees[i % len(trees)], ready[-1])
    threads_before = threading.active_count()
    fds_before = _open_fds()
    manager = ArchiveManager(ArchiveConfig(thread_pool_size=4))
    rng = random.Random(1)
    plan = [rng.choice(["create", "extract", "verify", "list"]) for _ in range(OPERATIONS)]
    expected_files = Counter[str]()
    lock = threading.Lock()

    def run(i: int, op: str) -> None:
        if op == "create":
            ext = formats[i % len(formats)]
            meta = manager.create_archive(trees[i % len(trees)], tmp_path / f"made{i}{ext}")
        elif op == "extract":
            meta = manager.extract_archive(ready[i % len(ready)], tmp_path / f"dest{i}")
        elif op == "verify":
            meta = manager.verify_archive(ready[i % len(ready)])
        else:
            entries = manager.list_archive(ready[i % len(ready)])
            with lock:
                expected_files[op] += sum(e.type == "file" for e in entries)
            return
        assert isinstance(meta, ArchiveMetadata)
        with lock:
            expected_files[op] += meta.file_count

    try:
        with ThreadPoolExecutor(THREADS) as clients:
            for future in [clients.submit(run, i, op) for i, op in enumerate(plan)]:
                future.result()
        stats = manager.get_stats()
    finally:
        manager.close()
    assert stats["operations"] == dict(Counter(plan))
    assert stats["operations_total"] == OPERATIONS
    assert stats["failures"] == {}
    assert stats["files"] == sum(expected_files.values())
    assert stats["parallel_operations"] + stats["sequential_operations"] == OPERATIONS
    assert stats["wall_time"]["count"] == OPERATIONS
    assert threading.active_count() == threads_before
    assert _open_fds() == fds_before


class _Recorder:
    """A progress callback that fails the test if it is ever entered twice at once."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self._inside = threading.Lock()
        self.overlaps = 0

    def __call__(self, done: int, total: int) -> None:
        if not self._inside.acquire(blocking=False):
            self.overlaps += 1
            return
        try:
            self.calls.append((done, total))
            threading.Event().wait(0.0001)  # widen the window a concurrent call would hit
        finally:
            self._inside.release()


@pytest.mark.parametrize("ext", FORMATS)
def test_progress_is_serial_monotonic_and_complete(tmp_path: Path, ext: str) -> None:
    src = tmp_path / "src"
    for i in range(60):
        (src / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 4}" / f"f{i}").write_bytes(os.urandom(i * 1000))
    (src / "large").write_bytes(os.urandom(1024 * 1024 + 1))  # streamed, not read whole
    archive = tmp_path / f"a{ext}"
    for op in ("create", "extract", "verify"):
        recorder = _Recorder()
        with ArchiveManager(ArchiveConfig(progress_callback=recorder, thread_pool_size=4)) as mgr:
            if op == "create":
                mgr.create_archive(src, archive)
            elif op == "extract":
                mgr.extract_archive(archive, tmp_path / "dest")
            else:
                mgr.verify_archive(archive)
        calls = recorder.calls
        assert recorder.overlaps == 0
        assert calls, op
        total = calls[-1][1]
        assert calls[-1] == (total, total) and total > 0
        assert all(t == total for _, t in calls)
        assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


MiB = 1024 * 1024
BUDGET = 64 * MiB
# RSS after imports and its peak, from /proc: ru_maxrss would count the forked pytest before the
# exec, and imports are not the operation's memory.
_PEAK_RSS = """
import sys
import arcman._create.create, arcman._extract.extract
from arcman import ArchiveConfig, ArchiveManager, ExtractionLimits
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
unlimited = ExtractionLimits(None, None, None, None)  # these archives exceed the Pi defaults
with ArchiveManager(ArchiveConfig(memory_budget=int(sys.argv[4]), limits=unlimited)) as manager:
    baseline = status("VmRSS:")
    if sys.argv[1] == "create":
        manager.create_archive(sys.argv[2], sys.argv[3])
    else:
        manager.extract_archive(sys.argv[2], sys.argv[3])
print(baseline, status("VmHWM:"))
"""


def _peak_rss(op: str, src: Path, dst: Path) -> tuple[int, int]:
    """RSS in bytes of a fresh interpreter once imports are done, and its peak by the end of
    one operation."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, op, str(src), str(dst), str(BUDGET)],
        check=True, capture_output=True, text=True,
    )
    baseline, peak = out.stdout.split()[-2:]
    return int(baseline), int(peak)


def _round_trip_within_budget(
    label: str, src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Create and extract ``src`` as .tar.zst in fresh interpreters; each peak RSS must stay
    within the budget over the RSS after imports."""
    archive = tmp_path / "out.tar.zst"
    peaks = {op: _peak_rss(op, *paths) for op, paths in
             [("create", (src, archive)), ("extract", (archive, tmp_path / "dest"))]}
    with capsys.disabled():
        print(f"\n{label}: " + ", ".join(
            f"{op} peak RSS {peak / MiB:.0f} MiB ({(peak - base) / MiB:.0f} over "
            f"{base / MiB:.0f} after imports)" for op, (base, peak) in peaks.items()))
    for base, peak in peaks.values():
        assert peak <= base + BUDGET


@pytest.mark.stress
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_memory_on_a_million_empty_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file list is compact, what was seen and the manifest are spooled, the guard keeps
    hashes, and everything else is bounded."""
    count = int(os.environ.get("ARCMAN_STRESS_FILES", "1000000"))
    src = tmp_path / "src"
    for d in range(count // 1000):
        sub = src / f"dir{d:04d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"file{i:06d}.txt").touch()
    _round_trip_within_budget(f"{count} empty files", src, tmp_path, capsys)


@pytest.mark.stress
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")
def test_memory_on_multi_gb_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Flat whatever the file size: data is streamed, codec buffers are shares of the budget."""
    src = tmp_path / "src"
    src.mkdir()
    size = int(os.environ.get("ARCMAN_STRESS_BYTES", str(3 * 1024 * MiB)))
    block = os.urandom(MiB)
    for name in ("a.bin", "b.bin"):
        with open(src / name, "wb") as f:
            for _ in range(size // MiB // 2):
                f.write(block)
    _round_trip_within_budget(f"{size / MiB / 1024:.1f} GiB in 2 files", src, tmp_path, capsys)
