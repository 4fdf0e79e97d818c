"""Writeback: the staging tree is written out while it is extracted, and every write-back
error, early or last, keeps the tree from being committed."""

from __future__ import annotations

import errno
import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager, CorruptArchiveError, DestinationError
from arcman._extract import syscalls
from arcman._extract import writeback as writeback_module
from arcman._extract.writeback import Writeback


def _archive(tmp_path: Path, files: int = 40, size: int = 3000) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(files):
        (source / f"f{i:03}").write_bytes(random.Random(i).randbytes(size))
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(source, archive)
    return archive


class _Syncs:
    """Stands in for syncfs: records each call (its descriptor, the thread, the files then in
    the tree) and fails the calls listed in ``failing`` (by number) with EIO."""

    def __init__(self, failing: tuple[int, ...] = (), delay: float = 0.0) -> None:
        self.calls: list[tuple[int, str, int]] = []
        self._failing = failing
        self._delay = delay
        self._lock = threading.Lock()

    def __call__(self, fd: int, path: str) -> bool:
        with self._lock:
            number = len(self.calls)
            files = sum(len(f) for _, _, f in os.walk(path))
            self.calls.append((fd, threading.current_thread().name, files))
        time.sleep(self._delay)
        if number in self._failing:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return True


def _early_syncs_in_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each early sync, once started on its thread, is waited for before the extraction goes
    on: where a sync falls is then set by the bytes written alone. On a loaded machine the
    thread could otherwise first run after the last file, or the first sync could still be
    running when the second was due (it is then skipped, by design)."""
    start = Writeback._start

    def start_and_wait(self: Writeback) -> None:
        start(self)
        self._join()

    monkeypatch.setattr(Writeback, "_start", start_and_wait)


def test_the_tree_is_synced_while_it_is_extracted_then_once_more_before_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = _Syncs()
    monkeypatch.setattr(writeback_module, "syncfs", syncs)
    monkeypatch.setattr(writeback_module, "EVERY", 20_000)  # every few files
    _early_syncs_in_step(monkeypatch)
    archive = _archive(tmp_path)
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        manager.extract_archive(archive, tmp_path / "out")
    early = [c for c in syncs.calls if c[1] == "arcman-writeback"]
    assert early, "no early sync"
    assert all(files < 40 for _, _, files in early[:1])  # the first one while files were written
    assert syncs.calls[-1][1] != "arcman-writeback"  # the last sync is the commit's own
    assert len({fd for fd, _, _ in syncs.calls}) == 1  # one descriptor, opened with the tree
    assert len(os.listdir(tmp_path / "out")) == 40


def test_sequential_mode_starts_no_thread_and_syncs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = _Syncs()
    monkeypatch.setattr(writeback_module, "syncfs", syncs)
    monkeypatch.setattr(writeback_module, "EVERY", 1)
    archive = _archive(tmp_path)
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert [thread for _, thread, _ in syncs.calls] == [threading.current_thread().name]


@pytest.mark.parametrize("failing", [0, 1])
def test_a_write_back_error_in_an_early_sync_is_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    """An early sync's error is reported once, to that call: the commit's own sync succeeds
    afterwards, and the tree (whose data may be lost) was committed all the same."""
    archive = _archive(tmp_path)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old").write_text("kept")
    syncs = _Syncs(failing=(failing,))
    monkeypatch.setattr(writeback_module, "syncfs", syncs)
    monkeypatch.setattr(writeback_module, "EVERY", 20_000)
    _early_syncs_in_step(monkeypatch)
    with pytest.raises(DestinationError, match="Input/output error"), ArchiveManager(
        ArchiveConfig(thread_pool_size=2)
    ) as manager:
        manager.extract_archive(archive, dest, replace=True)
    # The failing sync was an early one; none followed it, and the commit's did not run.
    assert len(syncs.calls) == failing + 1
    assert syncs.calls[failing][1] == "arcman-writeback"
    assert os.listdir(dest) == ["old"]
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "a.tar.gz.meta", "a.tar.gz.sha256",
                                            "out", "src"]


def test_a_failed_extraction_waits_for_the_early_sync_and_closes_its_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd")
    archive = _archive(tmp_path, files=200, size=40_000)  # 8 MB: read in several pieces
    data = bytearray(archive.read_bytes())
    data[len(data) * 9 // 10] ^= 0xFF  # a corrupt stream, found once files are written
    archive.write_bytes(bytes(data))
    syncs = _Syncs(delay=0.3)  # still running when the corruption is found
    monkeypatch.setattr(writeback_module, "syncfs", syncs)
    monkeypatch.setattr(writeback_module, "EVERY", 1)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(CorruptArchiveError), ArchiveManager(ArchiveConfig(thread_pool_size=2)) as m:
        m.extract_archive(archive, tmp_path / "out")
    assert syncs.calls  # an early sync ran
    assert set(os.listdir("/proc/self/fd")) <= before
    assert not [t for t in threading.enumerate() if t.name == "arcman-writeback"]
    assert not (tmp_path / "out").exists()


def test_finish_syncs_everything_where_there_is_no_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    monkeypatch.setattr(syscalls.sys, "platform", "darwin")
    monkeypatch.setattr(writeback_module.os, "sync", lambda: synced.append(True), raising=False)
    Writeback(str(tmp_path)).finish()
    assert synced == [True]
    monkeypatch.setattr(syscalls.sys, "platform", "linux")
    Writeback(str(tmp_path)).finish()  # syncfs: no sync() of every file system
    assert synced == [True] or not sys.platform.startswith("linux")


def test_without_syncfs_early_syncs_stop_and_finish_syncs_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    synced: list[bool] = []

    def no_syncfs(fd: int, path: str) -> bool:
        calls.append(fd)
        return False

    monkeypatch.setattr(writeback_module, "syncfs", no_syncfs)
    monkeypatch.setattr(writeback_module.os, "sync", lambda: synced.append(True), raising=False)
    monkeypatch.setattr(writeback_module, "EVERY", 10)
    writeback = Writeback(str(tmp_path))
    for _ in range(5):
        writeback.wrote(100)
        writeback._join()  # each early sync done before the next write
    writeback.finish()
    assert len(calls) == 2  # one early attempt, then finish's
    assert synced == [True]
