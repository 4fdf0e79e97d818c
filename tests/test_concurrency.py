"""One ArchiveManager shared by many threads; nothing of it survives close()."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from arcman import ArchiveConfig, ArchiveError, ArchiveManager, DestinationError, IntegrityError
from helpers import FORMATS, snapshot, writable


def _arcman_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("arcman-")]


@pytest.fixture
def trees(tmp_path: Path) -> list[Path]:
    roots = []
    for i in range(4):
        root = tmp_path / f"src{i}"
        (root / "d").mkdir(parents=True)
        for j in range(20):
            (root / "d" / f"f{j}").write_bytes(os.urandom(1000 * (i + j)))
        (root / "big").write_bytes(os.urandom(1024 * 1024 + i))  # the streamed path
        roots.append(root)
    return roots


def test_one_manager_from_eight_threads(tmp_path: Path, trees: list[Path]) -> None:
    # A ready archive per format for the extract and verify jobs to share.
    formats = writable(FORMATS)
    ready = {}
    with ArchiveManager() as setup:
        for ext in formats:
            ready[ext] = tmp_path / f"ready{ext}"
            setup.create_archive(trees[0], ready[ext])
    expected = snapshot(trees[0])
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(ready[".tar"].read_bytes())
    Path(f"{tampered}.sha256").write_text("0" * 64 + "  tampered.tar\n")

    manager = ArchiveManager(ArchiveConfig(thread_pool_size=4))
    start = threading.Barrier(8)

    def job(i: int) -> str:
        start.wait()  # all eight operations in flight together
        ext = formats[i % len(formats)]
        for round_ in range(3):
            kind = (i + round_) % 4
            if kind == 0:
                out = tmp_path / f"made-{i}-{round_}{ext}"
                manager.create_archive(trees[i % len(trees)], out)
                manager.extract_archive(out, tmp_path / f"made-{i}-{round_}")
                assert snapshot(tmp_path / f"made-{i}-{round_}") == snapshot(trees[i % len(trees)])
            elif kind == 1:
                dest = tmp_path / f"dest-{i}-{round_}"
                manager.extract_archive(ready[ext], dest)
                assert snapshot(dest) == expected
            elif kind == 2:
                assert manager.verify_archive_integrity(ready[ext])
                assert len(manager.list_archive(ready[ext])) == len(expected)
            else:
                with pytest.raises(IntegrityError):
                    manager.verify_archive(tampered)
        return threading.current_thread().name

    try:
        with ThreadPoolExecutor(8) as callers:
            list(callers.map(job, range(8)))
        stats = manager.get_stats()
        assert stats["pool_alive"] is True
        assert stats["operations_total"] == sum(stats["operations"].values())
        assert stats["failures"] == {"verify": 6}
    finally:
        manager.close()
    assert _arcman_threads() == []
    assert manager.get_stats()["pool_alive"] is False


def test_no_thread_survives_close_after_every_kind_of_operation(
    tmp_path: Path, trees: list[Path]
) -> None:
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        for ext in writable(FORMATS):
            archive = tmp_path / f"a{ext}"
            manager.create_archive(trees[1], archive)
            manager.verify_archive(archive)
            manager.list_archive(archive)
            manager.extract_archive(archive, tmp_path / f"out{ext}")
        # A failure in the middle of a stream must not strand the decompression thread.
        broken = tmp_path / "broken.tar.gz"
        broken.write_bytes((tmp_path / "a.tar.gz").read_bytes()[:5000])
        with pytest.raises(ArchiveError):
            manager.extract_archive(broken, tmp_path / "never")
        assert not (tmp_path / "never").exists()
    assert _arcman_threads() == []


@pytest.mark.parametrize(
    "config",
    [ArchiveConfig(thread_pool_size=2), ArchiveConfig(enable_parallelization=False)],
    ids=["parallel", "sequential"],
)
def test_a_closed_manager_refuses_work(
    tmp_path: Path, trees: list[Path], config: ArchiveConfig
) -> None:
    manager = ArchiveManager(config)
    manager.close()
    with pytest.raises(ArchiveError, match="closed"):
        manager.create_archive(trees[0], tmp_path / "a.tar")
    assert not (tmp_path / "a.tar").exists()


def _started_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads started from now on (they may have ended since)."""
    started: list[str] = []
    original = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        original(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


@pytest.mark.parametrize("ext", FORMATS)
def test_a_small_archive_is_made_without_starting_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """Nine files of 5 KB: a worker or the output thread would only be waited for."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(9):
        (source / f"f{i}.txt").write_bytes(b"%d small file\n" % i * 400)
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        started = _started_threads(monkeypatch)
        manager.create_archive(source, tmp_path / f"a{ext}")
        made_with = [name for name in started if name.startswith("arcman-")]
        manager.extract_archive(tmp_path / f"a{ext}", tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)
    assert made_with == []


@pytest.mark.parametrize("ext", [".tar.gz", ".tar.zst"])
def test_a_larger_archive_is_made_on_the_pool_and_the_output_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(200):  # several read batches, and more output than START_AFTER
        (source / f"f{i}").write_bytes(os.urandom(5000))
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        started = _started_threads(monkeypatch)
        manager.create_archive(source, tmp_path / f"a{ext}")
        made_with = list(started)
        manager.extract_archive(tmp_path / f"a{ext}", tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)
    assert "arcman-output" in made_with
    assert any(name.startswith("arcman-worker") for name in made_with)


def test_close_waits_for_an_operation_running_on_another_thread(tmp_path: Path) -> None:
    """Shutting the pool under a running extraction stranded its queued batches: it hung
    forever waiting for their byte budget, and left its staging tree behind."""
    src = tmp_path / "src"
    for d in range(20):  # files over the tiny-file average, so that the pool writes them
        (src / f"d{d}").mkdir(parents=True)
        for i in range(150):
            (src / f"d{d}" / f"f{i}").write_bytes(b"x" * 6000)
    with ArchiveManager() as manager:
        manager.create_archive(src, tmp_path / "a.tar")
    manager = ArchiveManager()
    outcome: list[object] = []
    started = threading.Event()

    def extract() -> None:
        config = ArchiveConfig(progress_item_callback=lambda name: started.set())
        try:
            outcome.append(manager.extract_archive(tmp_path / "a.tar", tmp_path / "out", config))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=extract, daemon=True)
    worker.start()
    assert started.wait(30)
    manager.close()
    worker.join(60)
    assert not worker.is_alive(), "the extraction hung after close()"
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.meta", "a.tar.sha256", "out", "src"]
    assert _arcman_threads() == []
    with pytest.raises(ArchiveError, match="closed"):
        manager.verify_archive(tmp_path / "a.tar")


def test_close_from_inside_an_operation_is_refused(tmp_path: Path, trees: list[Path]) -> None:
    with ArchiveManager() as manager:
        config = ArchiveConfig(progress_item_callback=lambda name: manager.close())
        with pytest.raises(ArchiveError, match="inside one of this manager's operations"):
            manager.create_archive(trees[0], tmp_path / "a.tar.gz", config)
        manager.create_archive(trees[0], tmp_path / "b.tar.gz")  # still open
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".gz")) == ["b.tar.gz"]


def test_a_failed_verify_stops_hashing_the_archive(
    tmp_path: Path, trees: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The .sha256 check hashes the whole archive on the pool: a verify that fails (Ctrl-C,
    say) must not leave it running for as long as that takes, which close() then waits for."""
    from arcman._extract import extract

    stopped: list[bool] = []
    hashing = threading.Event()

    def hash_file(path: str, stop: threading.Event) -> str:
        hashing.set()
        stopped.append(stop.wait(30))  # a huge archive: done only when told to stop
        return ""

    monkeypatch.setattr(extract, "_hash_file", hash_file)
    with ArchiveManager() as manager:
        manager.create_archive(trees[0], tmp_path / "a.tar.gz")

        def interrupt(done: int, total: int) -> None:
            # Once the job runs: one still queued is cancelled by close(), never started.
            hashing.wait(10)
            raise KeyboardInterrupt

        config = ArchiveConfig(progress_callback=interrupt)
        with pytest.raises(KeyboardInterrupt):
            manager.verify_archive(tmp_path / "a.tar.gz", config)
    assert stopped == [True]


def test_stats_hold_every_operation_close_waited_for(
    tmp_path: Path, trees: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operation was recorded after it told close() it had ended: get_stats() right after
    close() could miss it. Recording is slowed down here to widen that window."""
    from arcman import _stats

    record = _stats.StatsRecorder.record

    def slow_record(self: _stats.StatsRecorder, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.2)
        record(self, *args, **kwargs)

    monkeypatch.setattr(_stats.StatsRecorder, "record", slow_record)
    manager = ArchiveManager()
    started = threading.Event()
    config = ArchiveConfig(progress_item_callback=lambda name: started.set())
    worker = threading.Thread(
        target=manager.create_archive, args=(trees[0], tmp_path / "a.tar", config)
    )
    worker.start()
    assert started.wait(30)
    manager.close()
    assert manager.get_stats()["operations"] == {"create": 1}
    worker.join(30)


def test_two_creates_of_one_output_leave_one_runs_archive_and_its_sidecars(
    tmp_path: Path, trees: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A has renamed its archive into place and is about to rename its .sha256 when B, writing
    # the same output, runs from start to end. Unlocked, A's sidecars then land beside B's
    # archive. B must wait for A's commit to be over (A waits for B 1 s, then goes on).
    import hashlib
    import json

    from arcman import _atomic

    out = tmp_path / "same.tar.gz"
    a_between = threading.Event()
    b_done = threading.Event()
    commit = _atomic.AtomicFile.commit

    def paused_commit(self: _atomic.AtomicFile) -> None:
        if threading.current_thread().name == "A" and self.path.endswith(".sha256"):
            a_between.set()
            b_done.wait(1.0)
        commit(self)

    monkeypatch.setattr(_atomic.AtomicFile, "commit", paused_commit)

    def create(tree: Path) -> None:
        with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
            manager.create_archive(tree, out)

    a = threading.Thread(target=create, args=(trees[0],), name="A")
    a.start()
    assert a_between.wait(30)
    b = threading.Thread(target=lambda: (create(trees[1]), b_done.set()), name="B")
    b.start()
    a.join(30)
    b.join(30)
    assert b_done.is_set()
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert Path(f"{out}.sha256").read_text() == f"{digest}  same.tar.gz\n"
    assert json.loads(Path(f"{out}.meta").read_text())["checksum_sha256"] == digest
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _pause_thread_a_in_its_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """(A is paused, B is done): the thread named A, once its commit has checked DEST, sets
    the first and waits up to 1 s for the second before it renames its tree in."""
    from arcman._extract import commit as commit_module

    a_between = threading.Event()
    b_done = threading.Event()
    into_existing = commit_module._into_existing

    def paused(staging: str, dest: str, keep_previous: bool) -> str | None:
        if threading.current_thread().name == "A":
            a_between.set()
            b_done.wait(1.0)
        return into_existing(staging, dest, keep_previous)

    monkeypatch.setattr(commit_module, "_into_existing", paused)
    return a_between, b_done


def test_an_extraction_committed_while_another_commits_is_not_replaced_without_replace(
    tmp_path: Path, trees: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both find DEST empty. A has checked it again at its commit and is about to rename its
    # tree in when B commits. Unlocked, B then passed the same check and renamed its tree
    # in; A's rename found DEST full and replaced B's tree although neither asked --replace.
    archives = []
    with ArchiveManager() as manager:
        for i in (0, 1):
            archives.append(tmp_path / f"{i}.tar.gz")
            manager.create_archive(trees[i], archives[-1])
    dest = tmp_path / "dest"
    dest.mkdir()
    a_between, b_done = _pause_thread_a_in_its_commit(monkeypatch)
    errors: dict[str, BaseException] = {}

    def extract(name: str, archive: Path) -> None:
        try:
            with ArchiveManager() as manager:
                manager.extract_archive(archive, dest)
        except BaseException as exc:
            errors[name] = exc
        finally:
            if name == "B":
                b_done.set()

    a = threading.Thread(target=extract, args=("A", archives[0]), name="A")
    a.start()
    assert a_between.wait(30)
    b = threading.Thread(target=extract, args=("B", archives[1]), name="B")
    b.start()
    a.join(30)
    b.join(30)
    assert "A" not in errors, errors
    assert isinstance(errors.get("B"), DestinationError), errors
    assert snapshot(dest) == snapshot(trees[0])
    assert sorted(os.listdir(tmp_path)) == ["0.tar.gz", "0.tar.gz.meta", "0.tar.gz.sha256",
                                            "1.tar.gz", "1.tar.gz.meta", "1.tar.gz.sha256",
                                            "dest", *(f"src{i}" for i in range(4))]


def test_a_rollback_waits_for_a_commit_in_progress(
    tmp_path: Path, trees: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DEST holds tree 1, DEST.prev tree 0. A deploys tree 2 with --keep-previous and is
    # between its check and its swap when B rolls back. Unlocked, B swapped DEST and
    # DEST.prev under A, whose commit then discarded tree 1 as the older .prev: the tree
    # deployed before A's was gone.
    dest = tmp_path / "dest"
    archives = []
    with ArchiveManager() as manager:
        for i in (0, 1, 2):
            archives.append(tmp_path / f"{i}.tar.gz")
            manager.create_archive(trees[i], archives[-1])
        for i in (0, 1):
            manager.extract_archive(archives[i], dest, replace=True, keep_previous=True)
    a_between, b_done = _pause_thread_a_in_its_commit(monkeypatch)

    def deploy() -> None:
        with ArchiveManager() as manager:
            manager.extract_archive(archives[2], dest, replace=True, keep_previous=True)

    def roll_back() -> None:
        with ArchiveManager() as manager:
            manager.rollback(dest)
        b_done.set()

    a = threading.Thread(target=deploy, name="A")
    a.start()
    assert a_between.wait(30)
    b = threading.Thread(target=roll_back, name="B")
    b.start()
    a.join(30)
    b.join(30)
    assert b_done.is_set()
    # A's deploy, then B's rollback of it: tree 1 back at DEST, tree 2 at DEST.prev.
    assert snapshot(dest) == snapshot(trees[1])
    assert snapshot(tmp_path / "dest.prev") == snapshot(trees[2])
