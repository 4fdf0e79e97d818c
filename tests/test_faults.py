"""Faults: disk full, SIGKILL, Ctrl-C/SIGTERM and misbehaving sources leave nothing half-done.

Disk-full is injected at the OS-call level (os.write for extraction, the archive's file object
for creation). The kill tests run the CLI in a subprocess and kill it while it fills its
temporary, just after the rename or exchange into place, and at random moments: the destination
must then be exactly the old or the new version (and both must have been seen), and the only
leftovers clearly named temporaries, which the next run removes.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    CompressionFormat,
    DestinationError,
    SourceError,
    _atomic,
)
from arcman._atomic import clean_stale
from arcman._manifest import ManifestWriter
from helpers import Stalled

LEFTOVER = _atomic._SIBLING  # what clean_stale recognizes


def snapshot(root: Path) -> dict[str, bytes | str]:
    tree: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            tree[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            tree[rel] = "dir"
        else:
            tree[rel] = path.read_bytes()
    return tree


def make_tree(root: Path, version: str, files: int, big: int = 0) -> Path:
    """A version-stamped tree; ``big`` adds that many bytes of random data."""
    for i in range(files):
        sub = root / f"d{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"{version} file {i}\n" * (i % 7 + 1))
    (root / f"only-in-{version}").write_text(version)
    if big:
        (root / "big.bin").write_bytes(random.Random(version).randbytes(big))
    return root


# ---------------------------------------------------------------- disk full


class _FullDisk:
    """A write-only file that accepts ``room`` bytes, then fails with ENOSPC."""

    def __init__(self, inner: Any, room: int) -> None:
        self._inner = inner
        self._room = room

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        if n > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= n
        return int(self._inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _fill_disk_after(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Every file arcman writes atomically takes ``room`` bytes, then fails with ENOSPC."""
    real_fdopen = os.fdopen

    def full_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        return _FullDisk(real_fdopen(fd, *args, **kwargs), room)

    monkeypatch.setattr("arcman._atomic.os.fdopen", full_fdopen)


@pytest.mark.parametrize("ext", [".tar.gz", ".zip", ".tar.zst"])
def test_disk_full_during_create(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    archive = out / f"a{ext}"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    before = snapshot(out)
    _fill_disk_after(monkeypatch, 100_000)
    (sample_tree / "new.txt").write_text("changed")
    with ArchiveManager() as manager, pytest.raises(DestinationError, match="no space"):
        manager.create_archive(sample_tree, archive)
    assert snapshot(out) == before  # old archive and sidecars intact, no temporaries


@pytest.mark.parametrize("ext", [".tar.gz", ".zip"])
def test_a_failed_create_closes_its_manifest_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """Its file (past 1 MiB) was left to the collector: on 3.12 and later, a ResourceWarning."""
    closed: list[ManifestWriter] = []
    close = ManifestWriter.close

    def recorded(self: ManifestWriter) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(ManifestWriter, "close", recorded)
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "a").write_text("a")
    (tree / "z").write_bytes(b"z" * 2000)
    config = ArchiveConfig(max_file_size=1000)
    with ArchiveManager() as manager, pytest.raises(SourceError, match="'z'"):
        manager.create_archive(tree, tmp_path / f"a{ext}", config)
    assert closed


@pytest.mark.parametrize("sidecar", [".sha256", ".meta"])
def test_disk_full_while_a_sidecar_is_written_keeps_the_old_archive(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch, sidecar: str
) -> None:
    """The disk fills up with the new archive complete but its sidecar not yet written (a
    .meta listing a bigger tree than the old one): the run fails (exit 5), so the old
    archive and its sidecars must still be there, not the new archive without its .meta."""
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    before = snapshot(out)
    real_fdopen = os.fdopen

    class FullAtFlush(_FullDisk):  # writes are buffered: the disk is found full on flushing
        def write(self, data: Any) -> int:
            return int(self._inner.write(data))

        def flush(self) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        # The sidecar's temporary (.a.tar.gz.meta.arcman-tmp-...) finds the disk full.
        file = real_fdopen(fd, *args, **kwargs)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        return FullAtFlush(file, 0) if name.startswith(f".a.tar.gz{sidecar}.") else file

    monkeypatch.setattr("arcman._atomic.os.fdopen", fdopen)
    (sample_tree / "new.txt").write_text("changed")
    with ArchiveManager() as manager, pytest.raises(DestinationError, match="no space"):
        manager.create_archive(sample_tree, archive)
    assert snapshot(out) == before  # old archive and sidecars intact, no temporaries


@pytest.mark.parametrize("ext", [".tar.gz", ".tar.zst", ".tar"])
def test_disk_full_while_a_small_archive_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    """A small archive is written by the caller when the stream ends, with no output thread:
    a failure there is reported as well, and leaves nothing behind."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        (source / f"f{i}.txt").write_bytes(os.urandom(3000))
    out = tmp_path / "out"
    out.mkdir()
    _fill_disk_after(monkeypatch, 5000)
    with ArchiveManager() as manager, pytest.raises(DestinationError, match="no space"):
        manager.create_archive(source, out / f"a{ext}")
    assert list(out.iterdir()) == []


@pytest.fixture
def full_disk_for(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, int], None]:
    """Make os.write fail with ENOSPC for files under a directory once ``room`` bytes are used."""
    real_write = os.write

    def install(root: Path, room: int) -> None:
        budget = [room]
        prefix = str(root)

        def write(fd: int, data: Any) -> int:
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                target = ""
            if target.startswith(prefix):
                budget[0] -= memoryview(data).nbytes
                if budget[0] < 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        monkeypatch.setattr("arcman._extract.stage.os.write", write)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which files an os.write goes to")
    return install


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_disk_full_during_extract(
    tmp_path: Path,
    sample_tree: Path,
    full_disk_for: Callable[[Path, int], None],
    replace: bool,
    parallel: bool,
) -> None:
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    box = tmp_path / "box"
    dest = box / "dest"
    if replace:
        make_tree(dest, "old", 5)
    else:
        box.mkdir()
    before = snapshot(box)
    full_disk_for(box, 1024 * 1024)
    config = ArchiveConfig(enable_parallelization=parallel)
    with ArchiveManager(config) as manager, pytest.raises(DestinationError, match="no space"):
        manager.extract_archive(archive, dest, replace=replace)
    assert snapshot(box) == before


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), where the machine lets the tests mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_real_disk_full(tmp_path: Path, sample_tree: Path, small_fs: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager(ArchiveConfig(include_metadata=False)) as manager:
        manager.create_archive(sample_tree, archive)  # no .meta: no size known up front
        with pytest.raises(DestinationError, match="no space"):
            manager.extract_archive(archive, small_fs / "dest")
        assert list(small_fs.iterdir()) == []
        with pytest.raises(DestinationError, match="no space"):
            manager.create_archive(sample_tree, small_fs / "out.tar")
        assert list(small_fs.iterdir()) == []


# ---------------------------------------------------------------- stale temporaries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_run_removes_what_a_killed_run_left(
    tmp_path: Path, sample_tree: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "a.tar.gz"
    dest = tmp_path / "dest"
    dead, alive = _dead_pid(), os.getppid()
    stale_dir = tmp_path / f".dest.arcman-staging-{dead}-0123abcd"
    (stale_dir / "half").mkdir(parents=True)
    stale_tmp = tmp_path / f".a.tar.gz.arcman-tmp-{dead}-89abcdef"
    stale_tmp.write_bytes(b"partial")
    running = tmp_path / f".dest.arcman-staging-{alive}-00000000"
    running.mkdir()
    unrelated = tmp_path / f".other.arcman-staging-{dead}-11111111"
    unrelated.mkdir()
    with caplog.at_level(logging.WARNING, logger="arcman"), ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        manager.extract_archive(archive, dest)
    assert not stale_dir.exists() and not stale_tmp.exists()
    assert running.exists() and unrelated.exists()  # a live run's, and another name's
    assert sum("interrupted run" in r.getMessage() for r in caplog.records) == 2


def test_old_tree_moved_back_when_the_fallback_swap_was_cut(tmp_path: Path) -> None:
    """The non-atomic fallback renames DEST aside first; if killed there, DEST comes back."""
    dest = tmp_path / "dest"
    old = make_tree(tmp_path / f".dest.arcman-old-{_dead_pid()}-0123abcd", "old", 3)
    expected = snapshot(old)
    clean_stale(str(dest))
    assert snapshot(dest) == expected and not old.exists()


def test_names_near_the_file_systems_limit(tmp_path: Path, sample_tree: Path) -> None:
    """A 240-byte archive name or a 250-byte DEST is a name the file system takes, but their
    temporaries' suffixes made them fail ("File name too long"). Their temporaries now begin
    with a shortened stem, which the next run still recognizes as theirs; a name whose
    sidecar or DEST.prev could not exist is refused before any work."""
    archive = tmp_path / ("a" * 233 + ".tar.gz")
    dest = tmp_path / ("d" * 250)
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        manager.extract_archive(archive, dest)
        manager.extract_archive(archive, dest, replace=True, keep_previous=True)
        assert manager.verify_archive_integrity(archive)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [archive.name, archive.name + ".meta", archive.name + ".sha256", dest.name,
         dest.name + ".prev", "src"])
    stale = Path(_atomic.sibling(str(dest), _atomic.STAGING_MARKER).replace(
        f"-{os.getpid()}-", f"-{_dead_pid()}-"))
    assert len(stale.name) <= 255 and dest.name not in stale.name
    stale.mkdir()
    elsewhere = tmp_path / stale.name.replace(".ddd", ".ddD", 1)  # another long name's
    elsewhere.mkdir()
    clean_stale(str(dest))
    assert not stale.exists() and elsewhere.exists()
    with pytest.raises(DestinationError, match="would be a name of 256 bytes"), \
            ArchiveManager() as manager:
        manager.create_archive(sample_tree, tmp_path / ("b" * 242 + ".tar.gz"))
    with pytest.raises(DestinationError, match="would be a name of 256 bytes"), \
            ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / ("e" * 251), keep_previous=True,
                                replace=True)
    assert not any(p.name.startswith(("b", "e", ".b", ".e")) for p in tmp_path.iterdir())


# ---------------------------------------------------------------- killed, interrupted


def _arcman(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "arcman", *map(str, args)]


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("versions")
    trees = {v: make_tree(base / v, v, 600, big=4 * 1024 * 1024) for v in ("v1", "v2")}
    archives = {}
    with ArchiveManager() as manager:
        for v, tree in trees.items():
            archives[v] = base / f"{v}.tar.gz"
            manager.create_archive(tree, archives[v])
    return {"trees": {v: snapshot(t) for v, t in trees.items()}, "src": trees,
            "archives": archives}


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    names = [p.name for p in directory.iterdir() if p.name not in keep]
    assert all(LEFTOVER.fullmatch(n) for n in names), names
    return names


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; False if it finished first."""
    while proc.poll() is None:
        if ready():
            proc.kill()
            proc.wait()
            return True
    return False


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return -1


def _kill_points(
    directory: Path, target: Path, rng: random.Random
) -> list[tuple[str, Callable[[subprocess.Popen[bytes]], bool]]]:
    """Where to kill: while the temporary is being filled (must leave the old version), just
    after the rename/exchange into place (must leave the new one), and at random moments."""
    def staging(proc: subprocess.Popen[bytes]) -> bool:
        return _kill_when(
            proc, lambda: any(p.name.startswith(f".{target.name}.arcman-")
                              for p in directory.iterdir())
        )

    def swapped(proc: subprocess.Popen[bytes]) -> bool:
        before = _inode(target)
        return _kill_when(proc, lambda: _inode(target) != before)

    def anytime(proc: subprocess.Popen[bytes]) -> bool:
        time.sleep(rng.uniform(0.05, 1.5))
        killed = proc.poll() is None
        proc.kill()
        proc.wait()
        return killed

    return [("staging", staging), ("swapped", swapped)] * 2 + [("random", anytime)] * 6


def test_sigkill_during_extract_replace(tmp_path: Path, versions: dict[str, Any]) -> None:
    box = tmp_path / "box"
    box.mkdir()
    dest = box / "dest"
    subprocess.run(_arcman("extract", versions["archives"]["v1"], "-C", dest), check=True)
    outcomes = set()
    for point, kill in _kill_points(box, dest, random.Random(4)):
        old = snapshot(dest)
        version = "v2" if old == versions["trees"]["v1"] else "v1"  # always a change
        proc = subprocess.Popen(
            _arcman("extract", versions["archives"][version], "-C", dest, "--replace", "-q")
        )
        killed = kill(proc)
        now = snapshot(dest)
        assert now in (versions["trees"]["v1"], versions["trees"]["v2"]), "a mixed tree"
        outcome = "old" if now == old else "new"
        if point != "random":
            assert outcome == {"staging": "old", "swapped": "new"}[point], point
        if killed:
            outcomes.add(outcome)
        _leftovers(box, {"dest"})
    assert outcomes == {"old", "new"}, "kills must have hit both sides of the commit"
    subprocess.run(
        _arcman("extract", versions["archives"]["v2"], "-C", dest, "--replace", "-q"), check=True
    )
    assert snapshot(dest) == versions["trees"]["v2"]
    assert _leftovers(box, {"dest"}) == []


def test_sigkill_during_create(tmp_path: Path, versions: dict[str, Any]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "a.tar.gz"
    subprocess.run(_arcman("create", versions["src"]["v1"], "-o", archive, "-q"), check=True)
    outcomes = set()
    current = "v1"
    for point, kill in _kill_points(out, archive, random.Random(5)):
        old = archive.read_bytes()
        version = "v2" if current == "v1" else "v1"  # always a change
        proc = subprocess.Popen(_arcman("create", versions["src"][version], "-o", archive, "-q"))
        killed = kill(proc)
        outcome = "old" if archive.read_bytes() == old else "new"
        current = version if outcome == "new" else current
        if point != "random":
            assert outcome == {"staging": "old", "swapped": "new"}[point], point
        if killed:
            outcomes.add(outcome)
        _leftovers(out, {"a.tar.gz", "a.tar.gz.sha256", "a.tar.gz.meta"})
        # Old or new, the archive verifies, and its sidecars are never stale (maybe missing).
        subprocess.run(_arcman("verify", archive, "-q"), check=True)
    assert outcomes == {"old", "new"}, "kills must have hit both sides of the rename"
    subprocess.run(_arcman("create", versions["src"]["v2"], "-o", archive, "-q"), check=True)
    assert _leftovers(out, {"a.tar.gz", "a.tar.gz.sha256", "a.tar.gz.meta"}) == []


def _wait_for_temporary(directory: Path, name: str, proc: subprocess.Popen[bytes]) -> bool:
    """True once the running command's temporary for ``name`` appears (False if it finished
    first)."""
    while proc.poll() is None:
        if any(p.name.startswith(f".{name}.arcman-") for p in directory.iterdir()):
            return True
        time.sleep(0.002)
    return False


def _default_sigint() -> None:
    """In the child: Ctrl-C's default meaning. A shell starts a background job (`make test &`)
    with SIGINT ignored, and arcman, like any Unix program, keeps it ignored then."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("command", ["extract", "create"])
def test_interrupt_and_terminate(
    tmp_path: Path, versions: dict[str, Any], sig: signal.Signals, code: int, command: str
) -> None:
    box = tmp_path / "box"
    box.mkdir()
    dest = box / ("dest" if command == "extract" else "a.tar.gz")
    args = (
        ("extract", versions["archives"]["v2"], "-C", dest)
        if command == "extract"
        else ("create", versions["src"]["v2"], "-o", dest)
    )
    for _ in range(5):
        for p in box.iterdir():
            subprocess.run(["rm", "-rf", str(p)], check=True)
        proc = subprocess.Popen(_arcman(*args), stderr=subprocess.PIPE, preexec_fn=_default_sigint)
        if _wait_for_temporary(box, dest.name, proc):
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if proc.returncode != 0:  # 0: it finished before the signal could land; try again
            break
    else:
        pytest.fail(f"{command} always finished before it could be signalled")
    assert proc.returncode == code, err
    assert b"Traceback" not in err
    # Temporaries removed; the signal landed before the commit (nothing there) or just after
    # it (a complete result, which verifies).
    assert not [p.name for p in box.iterdir() if LEFTOVER.fullmatch(p.name)]
    if command == "extract" and dest.exists():
        assert snapshot(dest) == versions["trees"]["v2"]
    if command == "create" and dest.exists():
        subprocess.run(_arcman("verify", dest, "-q"), check=True)


def test_terminate_during_dry_run(
    sample_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run has no output (-o) to clean up after: SIGTERM still exits 143, no traceback."""
    from arcman import _cli

    def terminated(*args: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # main()'s handler raises at the next bytecode
        time.sleep(10)

    monkeypatch.setattr(_cli, "_dry_run", terminated)
    assert _cli.main(["create", str(sample_tree), "--dry-run"]) == 143
    assert capsys.readouterr().err == "arcman: terminated\n"


def _unread(pipe: Any) -> int:
    """How many bytes written to ``pipe`` its reader has not taken yet."""
    packed = fcntl.ioctl(pipe.fileno(), termios.FIONREAD, bytes(4))
    return int(struct.unpack("i", packed)[0])


def _stall(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Feed ``proc`` the first quarter of ``data`` and wait until it has read it all: it is
    then blocked on a pipe that stays open with no more."""
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 4])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while _unread(proc.stdin) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def _signalled(proc: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[int, str]:
    """Send ``sig`` to ``proc``, which waits on a stalled pipe, and return its exit status and
    its stderr; killed if it has not ended within 10 s (a hang: TimeoutExpired)."""
    assert proc.stderr is not None
    with proc.stderr:  # closed on a hang too: a pipe left open fails a later test
        try:
            assert proc.poll() is None, proc.stderr.read()
            proc.send_signal(sig)
            returncode = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return returncode, proc.stderr.read().decode()


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
     pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM")],
)
@pytest.mark.parametrize("command", ["extract", "verify", "list"])
def test_interrupt_and_terminate_while_standard_input_stalls(
    tmp_path: Path, versions: dict[str, Any], sig: signal.Signals, code: int, said: str,
    command: str,
) -> None:
    """``ssh pi arcman extract - -C /opt/app < app.tar.gz`` over a network that stalls: the
    decompressing thread waits on a read that does not return, and Ctrl-C or SIGTERM hung
    (closing the stream waited for that thread). Left to it, its read must not crash the
    interpreter's exit either (a BufferedReader's lock held by a daemon thread is a fatal
    error there)."""
    box = tmp_path / "box"
    dest = box / "dest"
    dest.mkdir(parents=True)
    (dest / "VERSION").write_text("v1")
    before = snapshot(dest)
    args = ("-C", dest, "--replace") if command == "extract" else ()
    data = versions["archives"]["v2"].read_bytes()
    proc = subprocess.Popen(
        _arcman(command, "-", *args, "-q"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, preexec_fn=_default_sigint,
    )
    assert proc.stdin is not None and proc.stderr is not None
    try:
        _stall(proc, data)
        returncode, err = _signalled(proc, sig)
    finally:
        proc.stdin.close()
    assert (returncode, err) == (code, f"arcman: {said}\n")  # no traceback, no fatal error
    assert snapshot(dest) == before
    assert os.listdir(box) == ["dest"]  # no staging tree left


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT"),
     pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM")],
)
@pytest.mark.parametrize(("output", "fmt"), [("-", "tar.gz"), ("-", "zip"), ("fifo", "tar.zst")])
def test_interrupt_and_terminate_while_the_output_stalls(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, sig: signal.Signals, code: int,
    said: str, output: str, fmt: str,
) -> None:
    """``arcman create app -o - --format tar.gz | ssh pi ...`` over a network that stops taking
    bytes: the output thread waits on a write that does not return, and Ctrl-C or SIGTERM hung
    (stopping the thread waited for that write), as for `-o FIFO` whose reader stops. The tree
    is larger than what is queued for the output thread (an eighth of the memory budget)."""
    source = tmp_path_factory.getbasetemp() / "stall-source"
    if not source.exists():
        (source / "d").mkdir(parents=True)
        for i in range(3):
            (source / "d" / f"{i}.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read_end, write_end = os.pipe()
    target = "-" if output == "-" else str(fifo)
    proc = subprocess.Popen(
        _arcman("create", source, "-o", target, "--format", fmt, "-q"),
        stdout=write_end if output == "-" else subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    os.close(write_end)
    # Opened, never read; closed below.
    reader = open(fifo, "rb") if output == "fifo" else os.fdopen(read_end, "rb")  # noqa: SIM115
    try:
        # Stalled: the pipe is full (its last page partly), and what is in it stops growing.
        deadline = time.monotonic() + 60
        unread, since = -1, time.monotonic()
        while proc.poll() is None and time.monotonic() < deadline:
            if _unread(reader) != unread:
                unread, since = _unread(reader), time.monotonic()
            elif unread > 0 and time.monotonic() - since > 0.3:
                break
            time.sleep(0.01)
        returncode, err = _signalled(proc, sig)
    finally:
        reader.close()
        if output == "fifo":
            os.close(read_end)
    assert (returncode, err) == (code, f"arcman: {said}\n")  # no traceback, no fatal error
    assert sorted(os.listdir(tmp_path)) == ["fifo"]  # still the FIFO, no sidecars


@pytest.mark.parametrize("delivered_to", ["main", "other"])
def test_a_library_call_interrupted_while_its_stream_stalls_raises_at_once(
    tmp_path: Path, versions: dict[str, Any], delivered_to: str
) -> None:
    """extract_archive(stream, dest) raises Ctrl-C's KeyboardInterrupt while the stream's read
    still waits, not once it returns; the read is left to the decompressing thread.

    A signal delivered to another thread does not interrupt the main thread's wait, as one
    that lands just before that wait begins does not (a CI run under load: the main thread
    waited for the stalled stream's next piece without a timeout until the stall ended)."""
    data = versions["archives"]["v2"].read_bytes()
    stream = Stalled(data[: len(data) // 4])
    main = threading.main_thread().ident
    assert main == threading.get_ident() and main is not None

    def interrupt() -> None:
        if stream.waiting.wait(30):
            target = main if delivered_to == "main" else threading.get_ident()
            signal.pthread_kill(target, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter.start()
    try:
        with ArchiveManager() as manager, pytest.raises(KeyboardInterrupt):
            manager.extract_archive(stream, tmp_path / "dest")
        assert stream.waiting.is_set(), "raised only once the stalled read returned"
    finally:
        signal.signal(signal.SIGINT, previous)
        stream.resume.set()
        interrupter.join()
    for thread in threading.enumerate():
        if thread.name == "arcman-decompress":  # done once its read returns
            thread.join(30)
            assert not thread.is_alive()
    assert os.listdir(tmp_path) == []


_LIBRARY_EXTRACT = """
import sys
from arcman import ArchiveManager
try:
    with ArchiveManager() as manager:
        manager.extract_archive(sys.stdin.buffer, sys.argv[1])
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


def test_a_program_reading_stdin_buffer_exits_after_ctrl_c_while_it_stalls(
    tmp_path: Path, versions: dict[str, Any]
) -> None:
    """A program of the library's user extracting ``sys.stdin.buffer`` (as the docstring
    shows), interrupted while the pipe stalls: the read left to the decompressing thread held
    the BufferedReader's lock, and the program's exit aborted ("Fatal Python error:
    _enter_buffered_busy", SIGABRT). Past what the reader holds, it is read through its
    descriptor."""
    data = versions["archives"]["v2"].read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIBRARY_EXTRACT, str(tmp_path / "dest")], stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_default_sigint,
    )
    assert proc.stdin is not None
    try:
        _stall(proc, data)
        time.sleep(0.2)  # its reads under way: the decompressing thread waits for more
        returncode, err = _signalled(proc, signal.SIGINT)
    finally:
        proc.stdin.close()
    assert (returncode, err) == (130, "interrupted\n")
    assert os.listdir(tmp_path) == []


def test_a_buffered_writer_to_a_pipe_gets_what_it_held_first(
    tmp_path: Path, versions: dict[str, Any]
) -> None:
    """Written through its descriptor (see create._past_the_buffer), a ``sys.stdout.buffer``
    keeps its order: what it held before the archive comes out first."""
    import tarfile

    read_end, write_end = os.pipe()
    writer = open(write_end, "wb")  # noqa: SIM115 - closed below
    received: list[bytes] = []

    def drain_pipe() -> None:
        with open(read_end, "rb") as reader:
            received.append(reader.read())

    drain = threading.Thread(target=drain_pipe)
    drain.start()
    try:
        writer.write(b"held\n")  # buffered, not yet written
        config = ArchiveConfig(format=CompressionFormat.TAR_GZ)
        with ArchiveManager(config) as manager:
            manager.create_archive(versions["src"]["v1"], writer)
        writer.write(b"after\n")
    finally:
        writer.close()
        drain.join(30)
    data = received[0]
    assert data.startswith(b"held\n") and data.endswith(b"after\n")
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(data[len(b"held\n") : -len(b"after\n")])
    with tarfile.open(archive) as tar:
        assert len(tar.getnames()) > 600


# ---------------------------------------------------------------- misbehaving sources


def _grow(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"more")


def _shrink(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


@pytest.mark.parametrize("name", ["a.txt", "sub/big.bin"])  # read whole, and streamed
@pytest.mark.parametrize("change", [_grow, _shrink, Path.unlink])
def test_source_changing_between_collection_and_reading(
    tmp_path: Path,
    sample_tree: Path,
    after_collection: Callable[[Callable[[], None]], None],
    name: str,
    change: Callable[[Path], Any],
) -> None:
    victim = sample_tree / name
    after_collection(lambda: change(victim))
    archive = tmp_path / "a.tar"
    with ArchiveManager() as manager, pytest.raises(SourceError) as info:
        manager.create_archive(sample_tree, archive)
    assert info.value.path is not None and info.value.path.endswith(name)
    assert list(tmp_path.iterdir()) == [sample_tree]  # no archive, no temporaries


@pytest.mark.parametrize("archive_name", ["a.tar.gz", "a.zip"])
@pytest.mark.parametrize("name", ["a.txt", "sub/big.bin"])  # read whole, and streamed
def test_source_file_rewritten_in_place_while_read(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch, name: str,
    archive_name: str,
) -> None:
    """A file rewritten in place at the same size while it is read (an editor, a build step)
    passes every size check; the bytes read are then part old, part new. That is an error,
    not a member whose manifest SHA-256 vouches for a version of the file that never was."""
    from arcman._create import files, read

    victim = sample_tree / name
    size = victim.stat().st_size

    def rewrite() -> None:
        with open(victim, "r+b") as f:
            f.write(b"\xaa" * size)

    if name == "a.txt":  # read whole: rewritten once read, before it is checked
        real = files.check_unchanged

        def rewrite_then_check(fd: int, size: int, stamp: int, path: str) -> None:
            if path.endswith(name):
                rewrite()
            real(fd, size, stamp, path)

        monkeypatch.setattr(files, "check_unchanged", rewrite_then_check)
        config = ArchiveConfig()
    else:  # streamed: rewritten after its first chunk

        def on_bytes(done: int, total: int) -> None:
            if not rewritten and done >= read.CHUNK_SIZE:
                rewritten.append(True)
                rewrite()

        rewritten: list[bool] = []
        config = ArchiveConfig(progress_callback=on_bytes)
    with ArchiveManager(config) as manager, pytest.raises(SourceError) as info:
        manager.create_archive(sample_tree, tmp_path / archive_name)
    assert "changed while the archive was being made" in str(info.value)
    assert info.value.path is not None and info.value.path.endswith(name)
    assert list(tmp_path.iterdir()) == [sample_tree]  # no archive, no temporaries


@pytest.mark.parametrize("name", ["a.txt", "sub/big.bin"])  # read whole, and streamed
def test_source_file_replaced_by_a_fifo(
    tmp_path: Path, sample_tree: Path, after_collection: Callable[[Callable[[], None]], None],
    name: str,
) -> None:
    """Opening a FIFO waits for a writer unless O_NONBLOCK: the swap must be an error, not a
    hang. The create runs on a thread so that a regression fails (the test then opens the
    FIFO for writing, which releases the reader) instead of blocking the test run."""
    import threading

    victim = sample_tree / name

    def to_fifo() -> None:
        victim.unlink()
        os.mkfifo(victim)

    after_collection(to_fifo)
    errors: list[BaseException] = []

    def create() -> None:
        try:
            with ArchiveManager() as manager:
                manager.create_archive(sample_tree, tmp_path / "a.tar")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        os.close(os.open(victim, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=30)
        pytest.fail("create blocked opening the FIFO")
    assert len(errors) == 1 and isinstance(errors[0], SourceError), errors
    assert "changed while the archive was being made" in str(errors[0])
    assert list(tmp_path.iterdir()) == [sample_tree]  # no archive, no temporaries


def test_vanished_source_file_skipped_when_asked(
    tmp_path: Path, sample_tree: Path, after_collection: Callable[[Callable[[], None]], None]
) -> None:
    after_collection(lambda: (sample_tree / "a.txt").unlink())
    archive = tmp_path / "a.zip"
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(sample_tree, archive)
        assert [s.split(":")[0] for s in meta.skipped] == ["a.txt"]
        listed = {e.name for e in manager.list_archive(archive)}
        assert manager.verify_archive_integrity(archive)
    assert "a.txt" not in listed and "run.sh" in listed  # manifest and contents agree


@pytest.mark.parametrize("name", ["a.txt", "sub/big.bin"])
def test_unreadable_source_file(
    tmp_path: Path, sample_tree: Path, unreadable: Callable[[Path], None], name: str
) -> None:
    unreadable(sample_tree / name)
    with ArchiveManager() as manager, pytest.raises(SourceError, match="Permission denied") as e:
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
    assert e.value.path is not None and e.value.path.endswith(name)
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
        assert [s.split(":")[0] for s in meta.skipped] == [name]
        assert name not in {e.name for e in manager.list_archive(tmp_path / "a.tar.gz")}


def test_output_inside_the_source_tree_is_excluded(sample_tree: Path) -> None:
    archive = sample_tree / "self.tar.gz"
    dead = _dead_pid()
    for name in ("self.tar.gz", "self.tar.gz.sha256"):
        (sample_tree / f".{name}.arcman-tmp-{dead}-0123abcd").write_bytes(b"left by a kill")
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        manager.create_archive(sample_tree, archive)  # again, over the first one
        names = {e.name for e in manager.list_archive(archive)}
    assert not any(n.startswith(("self.tar.gz", ".self.tar.gz")) for n in names)
    assert "a.txt" in names


def test_unwritable_destination_parent_is_named_by_dest(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error names DEST, not the staging directory the user never asked for."""
    archive = tmp_path / "a.tar"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    from arcman._extract import commit

    def mkdir(path: str, mode: int = 0o777) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(commit.os, "mkdir", mkdir)
    with ArchiveManager() as manager, pytest.raises(DestinationError) as caught:
        manager.extract_archive(archive, tmp_path / "dest")
    assert str(caught.value) == (
        f"cannot write {tmp_path / 'dest'}: Permission denied (the new tree is staged beside "
        f"it, in {str(tmp_path)!r}, which must be writable too)"
    )


def _as_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unlinking and removing directories as a user without CAP_DAC_OVERRIDE: refused in a
    directory that is not writable by its owner (the tests may run as root)."""
    real_unlink, real_rmdir = os.unlink, os.rmdir

    def checked(real: Callable[..., None]) -> Callable[..., None]:
        def call(path: Any, *, dir_fd: int | None = None) -> None:
            parent = os.fstat(dir_fd) if dir_fd is not None else os.stat(
                os.path.dirname(os.path.abspath(path))
            )
            if not parent.st_mode & 0o200:
                raise PermissionError(errno.EACCES, "Permission denied", path)
            real(path, dir_fd=dir_fd)

        return call

    monkeypatch.setattr(os, "unlink", checked(real_unlink))
    monkeypatch.setattr(os, "rmdir", checked(real_rmdir))


def test_replaced_tree_with_a_read_only_directory_is_removed(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory the user made read-only in the deployed tree (chmod 555) did not stop the
    swap, but left the replaced tree, hidden, beside DEST for ever (rmtree's errors ignored),
    and every later run warned that it was 'left by an interrupted run' and failed again."""
    archive = tmp_path / "a.tar"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        dest = tmp_path / "dest"
        manager.extract_archive(archive, dest)
        (dest / "sub").chmod(0o555)
        (dest / "sub" / "deep").chmod(0o500)
        _as_non_root(monkeypatch)
        manager.extract_archive(archive, dest, replace=True)
        manager.extract_archive(archive, dest, replace=True, keep_previous=True)
        manager.extract_archive(archive, dest, replace=True, keep_previous=True)
    assert not [n for n in os.listdir(tmp_path) if LEFTOVER.fullmatch(n)]
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.meta", "a.tar.sha256", "dest",
                                            "dest.prev", "src"]
