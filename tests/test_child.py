"""ChildProcess: batches of tiny files are written (extract) and read (create) by a helper
interpreter, with the same result as on a thread. A failed write fails the extraction and
leaves DEST as it was; a helper that dies while reading leaves its batches to the caller; it
never outlives the operation; where it cannot start, the caller does the work."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    CorruptArchiveError,
    DestinationError,
    SourceError,
    _child,
)
from arcman._child import BACKLOG, FEWEST_FILES, ChildProcess
from helpers import listing, snapshot

POOLED = ArchiveConfig(thread_pool_size=2)
EMPTY = hashlib.sha256(b"").digest()


class Patient(ChildProcess):
    """Waits for the child before the first batch, so that a test's small tree reaches it (an
    extraction otherwise writes inline until the child has started), and takes every batch
    however many wait (see BACKLOG); records every child."""

    started: list[Patient] = []
    patience = 60.0  # seconds

    def __init__(self, task: str, *args: str) -> None:
        super().__init__(task, *args)
        self.sent = 0
        Patient.started.append(self)

    def ready(self) -> bool:
        deadline = time.monotonic() + self.patience
        while not self._ready and self._ended is None and time.monotonic() < deadline:
            time.sleep(0.002)
        return super().ready()

    def waiting(self) -> int:
        return 0

    def submit(self, batch: list, reply) -> None:  # type: ignore[no-untyped-def, type-arg]
        self.sent += len(batch)
        super().submit(batch, reply)


def _helpers_are(monkeypatch: pytest.MonkeyPatch, kind: type[Patient]) -> None:
    """Make every helper an operation starts a ``kind``, with no start recorded yet."""
    Patient.started = []
    monkeypatch.setattr(_child, "ChildProcess", kind)


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> type[Patient]:
    _helpers_are(monkeypatch, Patient)
    return Patient


def _tiny_tree(root: Path, files: int = 600) -> Path:
    """``files`` files of 0-150 bytes in 6 directories, with varied modes and mtimes."""
    modes = [0o644, 0o755, 0o600, 0o640, 0o700, 0o751]  # kept as they are by extraction
    for i in range(files):
        path = root / f"d{i % 6}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i % 151))
        path.chmod(modes[i % len(modes)])
        os.utime(path, (1_600_000_000 + i, 1_600_000_000 + i))
    return root


def _archive(tmp_path: Path, tree: Path, name: str = "tiny.tar.gz") -> Path:
    """Made sequentially: no helper of a test's is started by it."""
    archive = tmp_path / name
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        manager.create_archive(tree, archive)
    return archive


class Dying(Patient):
    """Killed (SIGKILL) just before the batch after its 200th file is sent."""

    def submit(self, batch: list, reply) -> None:  # type: ignore[no-untyped-def, type-arg]
        if self.sent > 200 and self._child.returncode is None:
            os.kill(self._child.pid, signal.SIGKILL)
            self._child.wait()
        super().submit(batch, reply)


@pytest.fixture
def dying(monkeypatch: pytest.MonkeyPatch) -> type[Dying]:
    _helpers_are(monkeypatch, Dying)
    return Dying


def _no_child_left(children: list[Patient]) -> bool:
    return all(child._child.returncode is not None for child in children)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_child_writes_the_same_tree_as_a_thread(
    tmp_path: Path, patient: type[Patient], umask: int
) -> None:
    """Contents, modes (whatever the umask, as on a thread) and mtimes; every file after the
    first batch goes through the child, which has exited once extract returns."""
    tree = _tiny_tree(tmp_path / "src")
    archive = _archive(tmp_path, tree)
    old = os.umask(umask)
    try:
        with ArchiveManager(POOLED) as manager:
            result = manager.extract_archive(archive, tmp_path / "out")
    finally:
        os.umask(old)
    assert snapshot(tmp_path / "out") == snapshot(tree)
    assert result.file_count == 600
    assert len(patient.started) == 1
    assert patient.started[0].sent >= 600 - 64
    assert _no_child_left(patient.started)


def test_names_that_are_not_utf8_reach_the_child_unchanged(
    tmp_path: Path, patient: type[Patient]
) -> None:
    root = tmp_path / "src"
    root.mkdir()
    for i in range(200):
        name = os.fsdecode(b"caf\xe9-%03d \xff.txt" % i)
        (root / name).write_bytes(b"%d" % i)
    archive = _archive(tmp_path, root, "names.tar")
    with ArchiveManager(POOLED) as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(root)
    assert patient.started[0].sent >= 200 - 64 - FEWEST_FILES  # not the first, nor a short last


def test_sequential_mode_starts_no_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(task: str, *args: str) -> None:
        raise AssertionError("a child was started in sequential mode")

    tree = _tiny_tree(tmp_path / "src")
    archive = _archive(tmp_path, tree)
    monkeypatch.setattr(_child, "ChildProcess", refuse)
    for config in (ArchiveConfig(enable_parallelization=False), ArchiveConfig(thread_pool_size=1)):
        out = tmp_path / f"out{config.thread_pool_size}"
        with ArchiveManager(config) as manager:
            manager.extract_archive(archive, out)
        assert snapshot(out) == snapshot(tree)


@pytest.mark.parametrize("interpreter", ["missing", "not-python"])
def test_without_a_child_the_caller_writes(
    tmp_path: Path, patient: type[Patient], monkeypatch: pytest.MonkeyPatch, interpreter: str
) -> None:
    """No interpreter to start, or one that answers with something else than a writer's
    frames: the extraction writes every file itself and succeeds."""
    tree = _tiny_tree(tmp_path / "src")
    archive = _archive(tmp_path, tree)
    fake = tmp_path / "python"
    if interpreter == "not-python":
        fake.write_text("#!/bin/sh\necho 'usage: this is not python'\nexec sleep 30\n")
        fake.chmod(0o755)
        monkeypatch.setattr(patient, "patience", 0.1)  # it never says it is ready
    monkeypatch.setattr(sys, "executable", str(fake))
    with ArchiveManager(POOLED) as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tree)
    assert all(child.sent == 0 for child in patient.started)
    assert _no_child_left(patient.started)  # the impostor was stopped, not left sleeping


def test_a_child_that_dies_fails_the_extraction_and_leaves_dest(
    tmp_path: Path, dying: type[Dying]
) -> None:
    tree = _tiny_tree(tmp_path / "src")
    archive = _archive(tmp_path, tree)
    dest = tmp_path / "deploy" / "app"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("the deployed version")
    before = snapshot(dest)
    with ArchiveManager(POOLED) as manager, pytest.raises(DestinationError) as caught:
        manager.extract_archive(archive, dest, replace=True)
    assert "write helper process ended early (exit status -9)" in str(caught.value)
    assert snapshot(dest) == before
    assert listing(tmp_path / "deploy") == ["app"]  # no staging tree left beside it
    assert _no_child_left(Patient.started)


def test_a_failed_extraction_stops_the_child(tmp_path: Path, patient: type[Patient]) -> None:
    """A damaged archive fails after the child has written part of the tree: it is stopped
    and reaped before the staging tree is removed."""
    tree = _tiny_tree(tmp_path / "src")
    archive = _archive(tmp_path, tree, "tiny.tar")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2 + 700] ^= 0xFF  # a member's content: its digest no longer matches
    archive.write_bytes(bytes(data))
    before = listing(tmp_path)
    with ArchiveManager(POOLED) as manager, pytest.raises((CorruptArchiveError,)):
        manager.extract_archive(archive, tmp_path / "out")
    assert listing(tmp_path) == before
    assert patient.started and patient.started[0].sent > 0
    assert _no_child_left(patient.started)


def test_a_write_error_in_the_child_names_the_member(tmp_path: Path) -> None:
    """The child's OSError comes back as the DestinationError a thread's would be: here a file
    over the file-size limit (RLIMIT_FSIZE, inherited by the child), in a batch of tiny ones."""
    resource = pytest.importorskip("resource")
    tree = _tiny_tree(tmp_path / "src", files=300)
    (tree / "d3" / "f0200.txt").write_bytes(os.urandom(100_000))  # 1.6 KB a file in its batch
    archive = _archive(tmp_path, tree)
    before = listing(tmp_path)
    script = textwrap.dedent(f"""
        import resource, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_child import Patient
        from arcman import ArchiveConfig, ArchiveManager, DestinationError
        from arcman import _child
        _child.ChildProcess = Patient
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, resource.RLIM_INFINITY))
        try:
            with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
                manager.extract_archive({str(archive)!r}, {str(tmp_path / "out")!r})
        except DestinationError as exc:
            print(exc, "| sent", Patient.started[0].sent)
    """)
    del resource
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    message, _, sent = run.stdout.strip().rpartition(" | sent ")
    assert message == "cannot write d3/f0200.txt: File too large"
    assert int(sent) > 0
    assert listing(tmp_path) == before


def test_ctrl_c_is_left_to_the_parent(tmp_path: Path) -> None:
    """SIGINT reaches a terminal's whole process group: the child ignores it, and writes on
    until the parent closes or kills it."""
    writer = ChildProcess("write", str(tmp_path))
    try:
        deadline = time.monotonic() + 60
        while not writer.ready() and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(writer._child.pid, signal.SIGINT)
        time.sleep(0.1)
        answers: list[tuple[object, OSError | None]] = []
        writer.submit(
            [("a", b"after", 0o640, None, 5), ("b", b"", 0o600, 0o751, None)],
            lambda answer, ended, seconds: answers.append((answer, ended)),
        )
    finally:
        writer.close()
    assert answers == [(([hashlib.sha256(b"after").digest(), EMPTY], None), None)]
    assert (tmp_path / "a").read_bytes() == b"after"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640 & ~_umask()
    assert (tmp_path / "a").stat().st_mtime == 5
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o751
    assert writer._child.returncode == 0


def test_batches_after_the_end_are_answered_with_an_error(tmp_path: Path) -> None:
    writer = ChildProcess("write", str(tmp_path))
    writer.kill()
    answers: list[OSError | None] = []
    writer.submit([("a", b"x", 0o644, None, None)], lambda a, ended, s: answers.append(ended))
    assert answers and answers[0] is not None and "was stopped" in str(answers[0])
    assert not (tmp_path / "a").exists()


def test_an_answer_read_after_kill_answered_its_batch_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill() answers every batch with its failure; an answer the child had already sent,
    read after that, is dropped: the batch is answered once, and the reader thread ends
    without an exception (which would print a traceback)."""
    crashes: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    arrived, gate = threading.Event(), threading.Event()

    class GatedLock:
        """The child's lock, but its reply thread, holding an answer, waits at it until the
        gate opens."""

        def __init__(self) -> None:
            self._lock = threading.Lock()

        def __enter__(self) -> None:
            if threading.current_thread().name.endswith("-replies"):
                arrived.set()
                gate.wait(10)
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    writer = ChildProcess("write", str(tmp_path))
    writer._lock = GatedLock()  # type: ignore[assignment]
    answers: list[OSError | None] = []
    writer.submit([("a", b"x", 0o644, None, None)], lambda a, ended, s: answers.append(ended))
    assert arrived.wait(10)  # the answer has been read and waits at the gate
    writer.kill()
    gate.set()
    writer._reader.join(10)
    assert not writer._reader.is_alive()
    assert len(answers) == 1 and "was stopped" in str(answers[0])
    assert crashes == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ create: the read helper


@pytest.mark.parametrize("ext", ["tar.gz", "tar.zst", "zip"])
def test_an_archive_read_by_the_helper_is_the_sequential_ones_byte_for_byte(
    tmp_path: Path, patient: type[Patient], ext: str
) -> None:
    tree = _tiny_tree(tmp_path / "src")
    helped, alone = tmp_path / f"helped.{ext}", tmp_path / f"alone.{ext}"
    with ArchiveManager(POOLED) as manager:
        result = manager.create_archive(tree, helped)
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        manager.create_archive(tree, alone)
    assert helped.read_bytes() == alone.read_bytes()
    assert result.file_count == 600
    assert len(patient.started) == 1 and patient.started[0].sent >= 600 - 64
    assert _no_child_left(patient.started)
    with ArchiveManager(POOLED) as manager:
        manager.extract_archive(helped, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tree)


def test_hard_links_the_helper_checks_make_the_sequential_archive(
    tmp_path: Path, patient: type[Patient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hard links ride in the helper's batches (checked there, made into link records): the
    archive is the sequential one byte for byte, and a name replaced meanwhile is refused."""
    tree = _tiny_tree(tmp_path / "src")
    for i in range(0, 600, 3):
        original = tree / f"d{i % 6}" / f"f{i:04d}.txt"
        os.link(original, original.with_suffix(".link"))
    helped, alone = tmp_path / "helped.tar.gz", tmp_path / "alone.tar.gz"
    with ArchiveManager(POOLED) as manager:
        result = manager.create_archive(tree, helped)
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        manager.create_archive(tree, alone)
    assert helped.read_bytes() == alone.read_bytes()
    assert result.file_count == 600 and len(result.files) == 806  # 200 links, 6 directories
    assert len(patient.started) == 1 and patient.started[0].sent > 600
    with ArchiveManager(POOLED) as manager:
        manager.extract_archive(helped, tmp_path / "out")
    out = tmp_path / "out" / "d0"
    assert os.path.samefile(out / "f0000.txt", out / "f0000.link")

    class Replacing(Patient):
        def submit(self, batch: list, reply) -> None:  # type: ignore[no-untyped-def, type-arg]
            for item in batch:
                if item[0] == "d0/f0300.link":
                    (tree / item[0]).unlink()
                    (tree / item[0]).write_bytes(b"another file")
            super().submit(batch, reply)

    first = patient.started
    _helpers_are(monkeypatch, Replacing)
    with ArchiveManager(POOLED) as manager, pytest.raises(SourceError) as caught:
        manager.create_archive(tree, tmp_path / "replaced.tar.gz")
    assert caught.value.path == str(tree / "d0" / "f0300.link")
    assert "changed while the archive was being made" in str(caught.value)
    assert Patient.started and Patient.started[0].sent > 0
    assert _no_child_left([*first, *Patient.started])


class Vanishing(Patient):
    """Removes d4/f0400.txt just before the batch that holds it goes to the helper (a tar's
    records helper is told the tree's root and gets names under it)."""

    def __init__(self, task: str, *args: str) -> None:
        super().__init__(task, *args)
        self.root = args[1] if task == "records" else ""

    def submit(self, batch: list, reply) -> None:  # type: ignore[no-untyped-def, type-arg]
        for item in batch:
            if item[0].endswith("d4/f0400.txt"):
                os.unlink(os.path.join(self.root, item[0]))
        super().submit(batch, reply)


@pytest.mark.parametrize("skip", [True, False])
def test_a_file_the_helper_cannot_read_is_an_error_or_a_reported_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: bool
) -> None:
    Patient.started = []
    monkeypatch.setattr(_child, "ChildProcess", Vanishing)
    tree = _tiny_tree(tmp_path / "src")
    archive = tmp_path / "a.tar.gz"
    config = ArchiveConfig(thread_pool_size=2, on_error="skip" if skip else "fail")
    with ArchiveManager(config) as manager:
        if not skip:
            with pytest.raises(SourceError) as caught:
                manager.create_archive(tree, archive)
            assert "No such file or directory" in str(caught.value)
            assert caught.value.path == str(tree / "d4" / "f0400.txt")
            assert listing(tmp_path) == ["src"]  # no archive, no temporary
        else:
            result = manager.create_archive(tree, archive)
            assert [s.split(":")[0] for s in result.skipped] == ["d4/f0400.txt"]
            assert "No such file or directory" in result.skipped[0]
            names = {entry.name for entry in manager.list_archive(archive)}
            assert "d4/f0400.txt" not in names and "d4/f0406.txt" in names
    assert Patient.started and Patient.started[0].sent > 0
    assert _no_child_left(Patient.started)


def test_batches_with_names_that_need_pax_are_written_member_by_member(
    tmp_path: Path, patient: type[Patient]
) -> None:
    """A batch the helper cannot make into plain records (a non-ASCII name, a name over 100
    bytes) comes back read, and its members get pax headers as any other would."""
    tree = _tiny_tree(tmp_path / "src")
    odd = ["d4/caf\u00e9-f0400.txt", "d5/" + "n" * 120]
    (tree / "d4" / "f0400.txt").rename(tree / odd[0])
    (tree / odd[1]).write_bytes(b"long name")
    helped, alone = tmp_path / "helped.tar.gz", tmp_path / "alone.tar.gz"
    with ArchiveManager(POOLED) as manager:
        result = manager.create_archive(tree, helped)
        manager.extract_archive(helped, tmp_path / "out")
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        manager.create_archive(tree, alone)
    assert helped.read_bytes() == alone.read_bytes()
    assert result.file_count == 601 and set(odd) <= set(result.files)
    assert patient.started and patient.started[0].sent >= 601 - 64
    assert snapshot(tmp_path / "out") == snapshot(tree)
    with tarfile.open(helped) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for name in odd:
            data = tar.extractfile(members[name])
            assert data is not None and data.read() == (tree / name).read_bytes()
    assert _no_child_left(patient.started)


def test_batches_of_a_helper_that_dies_are_read_by_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dying: type[Dying]
) -> None:
    tree = _tiny_tree(tmp_path / "src")
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager(POOLED) as manager:
        result = manager.create_archive(tree, archive)
        monkeypatch.setattr(_child, "ChildProcess", Patient)  # this one lives
        manager.extract_archive(archive, tmp_path / "out")
    assert result.file_count == 600 and not result.skipped
    assert snapshot(tmp_path / "out") == snapshot(tree)
    assert Patient.started[0].sent > 200
    assert _no_child_left(Patient.started)


def test_short_runs_of_tiny_files_stay_with_the_caller(
    tmp_path: Path, patient: type[Patient]
) -> None:
    """Batches of fewer than FEWEST_FILES files cost the helper more than they save: create's
    batches end at each directory, so 40 directories of 10 tiny files start none (extract's
    batches run on across directories)."""
    root = tmp_path / "src"
    for d in range(40):
        for f in range(FEWEST_FILES - 6):
            path = root / f"d{d:02d}" / f"f{f}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"%d" % f)
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager(POOLED) as manager:
        manager.create_archive(root, archive)
        assert patient.started == []
        manager.extract_archive(archive, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(root)


class _Ready:
    """A stand-in for ChildProcess: ready at once, with ``unanswered`` batches waiting."""

    unanswered = 0

    def __init__(self, task: str, *args: str) -> None:
        pass

    def ready(self) -> bool:
        return True

    def waiting(self) -> int:
        return self.unanswered


def test_a_lazy_helper_starts_at_the_second_batch_worth_it_and_never_after_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[tuple[str, ...]] = []

    class Stub(_Ready):
        def __init__(self, task: str, *args: str) -> None:
            started.append((task, *args))

        def close(self) -> None:
            started.append(("closed",))

    monkeypatch.setattr(_child, "ChildProcess", Stub)
    helper = _child.LazyHelper("read", "follow")
    assert helper.for_batch(FEWEST_FILES - 1) is None  # too few files: not even counted
    assert helper.for_batch(FEWEST_FILES) is None  # the first batch worth it: the caller's
    assert helper.for_batch(64, last=True) is None  # nor for a last batch
    assert started == []
    first = helper.for_batch(64)
    assert isinstance(first, Stub) and started == [("read", "follow")]
    assert helper.for_batch(64) is first and helper.for_batch(FEWEST_FILES - 1) is None
    helper.stop(at_once=False)
    assert started[-1] == ("closed",)
    assert helper.for_batch(64) is None and len(started) == 2  # no second helper


def test_a_busy_helper_leaves_the_next_batch_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_child, "ChildProcess", _Ready)
    helper = _child.LazyHelper("write", "/x")
    assert helper.for_batch(64) is None  # the first batch: the caller's
    process = helper.for_batch(64)
    assert isinstance(process, _Ready)
    process.unanswered = BACKLOG - 1
    assert helper.for_batch(64) is process
    process.unanswered = BACKLOG
    assert helper.for_batch(64) is None  # the caller writes this one itself
    process.unanswered = BACKLOG - 1  # an answer came
    assert helper.for_batch(64) is process


def test_when_the_helper_is_slower_the_caller_writes_batches_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that answers slowly (as on a disk where creating a file costs more than
    parsing it) gets at most BACKLOG batches at a time; the caller writes the others, and the
    tree is the same."""

    class Slow(Patient):
        waiting = ChildProcess.waiting
        most = 0

        def submit(self, batch: list, reply) -> None:  # type: ignore[no-untyped-def, type-arg]
            def late(*answer: Any) -> None:
                time.sleep(0.01)  # holds every later answer back too
                reply(*answer)

            Slow.most = max(Slow.most, self.waiting() + 1)
            super().submit(batch, late)

    _helpers_are(monkeypatch, Slow)
    tree = _tiny_tree(tmp_path / "src", 3000)
    archive = _archive(tmp_path, tree)
    with ArchiveManager(POOLED) as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tree)
    assert Patient.started and 0 < Patient.started[0].sent < 3000  # shared out
    assert Slow.most <= BACKLOG


def test_a_lazy_helper_that_cannot_start_leaves_every_batch_to_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[str] = []

    def cannot(task: str, *args: str) -> None:
        attempts.append(task)
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_child, "ChildProcess", cannot)
    helper = _child.LazyHelper("write", "/x")
    assert [helper.for_batch(64) for _ in range(5)] == [None] * 5
    assert attempts == ["write"]  # tried once
    helper.stop(at_once=True)


_INTERRUPTED_AS_THE_HELPER_STARTS = """
import sys
from arcman import ArchiveManager, _child

calls = []
real = _child.LazyHelper.for_batch

def for_batch(self, files, *, last=False):
    calls.append(files)
    if len(calls) == 2:  # the batch at which the helper would start
        raise KeyboardInterrupt
    return real(self, files, last=last)

_child.LazyHelper.for_batch = for_batch
try:
    with ArchiveManager() as manager:
        manager.extract_archive(sys.argv[1], sys.argv[2])
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_while_a_batch_is_handed_over_does_not_hang_extraction(tmp_path: Path) -> None:
    """Ctrl-C as a batch of tiny files went to the helper (starting it) left the batch's
    budget taken: the failing extraction's drain() waited for it for good (found by sending
    SIGINT to `arcman extract` of 20,000 tiny files; the second run hung)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03d}").write_bytes(b"x" * (i % 50))
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(src, archive)
    dest = tmp_path / "box" / "dest"
    dest.parent.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_AS_THE_HELPER_STARTS, str(archive), str(dest)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.stdout == "interrupted\n", result.stderr
    assert os.listdir(dest.parent) == []  # the staging tree removed


def test_a_helper_interrupted_as_it_starts_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while ChildProcess started its reply thread: the caller never got the object
    to stop the child, which waited for batches until this process exited."""
    started: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def start(self: threading.Thread) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        ChildProcess("write", str(tmp_path))
    assert len(started) == 1 and started[0].poll() is not None
    assert started[0].stdin is not None and started[0].stdin.closed
    assert started[0].stdout is not None and started[0].stdout.closed
