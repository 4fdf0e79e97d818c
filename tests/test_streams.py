"""Archives read from a stream (a pipe, stdin, a socket) and written to one (stdout)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    CompressionFormat,
    ConfigError,
    CorruptArchiveError,
    DestinationError,
    ExtractionLimits,
    IntegrityError,
    LimitExceededError,
    SourceError,
)
from arcman._cli import main
from helpers import snapshot, writable

TAR_FORMATS = ("tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst")
FORMATS = (*TAR_FORMATS, "zip")


class Trickle(io.RawIOBase):
    """A pipe as a socket or an HTTP response gives it: no seek, no size, and each read
    returns at most the next of ``steps`` bytes (then 64 KiB), whatever was asked."""

    def __init__(self, data: bytes, steps: list[int] | None = None) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._steps = list(steps or [])
        self.read_to = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        step = self._steps.pop(0) if self._steps else 65536
        n = min(len(buffer), max(step, 1), len(self._data) - self.read_to)
        buffer[:n] = self._data[self.read_to : self.read_to + n]
        self.read_to += n
        return n


def _archive(tmp_path: Path, tree: Path, fmt: str) -> Path:
    archive = tmp_path / f"app.{fmt}"
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


@pytest.mark.parametrize("parallel", [True, False], ids=["pool", "sequential"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_extract_from_a_stream_matches_the_file(
    tmp_path: Path, sample_tree: Path, fmt: str, parallel: bool
) -> None:
    data = _archive(tmp_path, sample_tree, fmt).read_bytes()
    stream = Trickle(data)
    config = ArchiveConfig(enable_parallelization=parallel)
    with ArchiveManager(config) as manager:
        meta = manager.extract_archive(stream, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)
    assert meta.verification == "manifest"  # no sidecar: the manifest inside checks every file
    assert meta.compressed_size == len(data) == stream.read_to
    assert meta.checksum_sha256 == hashlib.sha256(data).hexdigest()  # hashed as it passed
    assert meta.filename == "<stream>"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fmt=st.sampled_from(writable(FORMATS)), steps=st.lists(st.integers(1, 5000), max_size=40))
def test_short_reads_anywhere_give_the_same_tree(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, steps: list[int]
) -> None:
    """A stream may return fewer bytes than asked at any point, the format's magic bytes
    included: detection and decoding see the same bytes as from the file."""
    tmp_path = tmp_path_factory.mktemp("s")
    tree = tmp_path / "src"
    (tree / "d").mkdir(parents=True)
    for i in range(5):
        (tree / "d" / f"f{i}").write_bytes(bytes([i]) * (i * 1000 + 1))
    data = _archive(tmp_path, tree, fmt).read_bytes()
    with ArchiveManager() as manager:
        manager.extract_archive(Trickle(data, steps), tmp_path / "out")
        listed = [e.name for e in manager.list_archive(Trickle(data, steps))]
    assert snapshot(tmp_path / "out") == snapshot(tree)
    assert "d/f4" in listed


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("damage", ["member data", "truncated"])
def test_a_damaged_stream_leaves_the_destination_as_it_was(
    tmp_path: Path, sample_tree: Path, damage: str
) -> None:
    """The stream is extracted as it arrives, yet nothing is committed before its end has
    been read and checked: the deployed tree stays, and nothing is left beside it."""
    data = _archive(tmp_path, sample_tree, "tar").read_bytes()
    dest = tmp_path / "opt" / "app"
    dest.mkdir(parents=True)
    (dest / "VERSION").write_text("v1")
    # Cut in half, or a.txt's content changed, which only the manifest at the end tells.
    bad = data[: len(data) // 2] if damage == "truncated" else _flip(data, data.index(b"hello\n"))
    with pytest.raises((IntegrityError, CorruptArchiveError)), ArchiveManager() as manager:
        manager.extract_archive(Trickle(bad), dest, replace=True)
    assert sorted(os.listdir(dest.parent)) == ["app"]
    assert os.listdir(dest) == ["VERSION"]


class _Spools:
    """Records where each spool was made (tempfile.TemporaryFile's ``dir``); ``room``: the
    bytes its disk takes before it is full."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, room: int | None = None) -> None:
        self.dirs: list[str | None] = []
        self._make = tempfile.TemporaryFile
        self._room = room
        monkeypatch.setattr(tempfile, "TemporaryFile", self)

    def __call__(self, dir: str | None = None) -> object:
        self.dirs.append(dir)
        if self._room is not None:
            return io.BufferedRandom(_FullDisk(self._room))
        return self._make(dir=dir)


class _FullDisk(io.RawIOBase):
    """A file on a disk with ``room`` bytes free: a write past them fails below the buffer,
    as the kernel's does, so that what the buffer holds then fails again when it is flushed
    or closed."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self._room = room

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def readinto(self, buffer: Any) -> int:
        return 0

    def write(self, data: Any) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return len(data)


def test_a_zip_stream_is_saved_beside_the_tree_and_leaves_nothing(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip's directory is at its end: the stream is saved, unlinked, in the staging tree
    (the destination's file system, whose free space is checked), or for verify in the
    system's temporary directory; nothing of it is left anywhere."""
    data = _archive(tmp_path, sample_tree, "zip").read_bytes()
    spools = _Spools(monkeypatch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "opt").mkdir()
    with ArchiveManager() as manager:
        meta = manager.extract_archive(Trickle(data), tmp_path / "opt" / "app")
        checked = manager.verify_archive(Trickle(data))
        stats = manager.get_stats()
    assert snapshot(tmp_path / "opt" / "app") == snapshot(sample_tree)
    staging, system = spools.dirs
    assert staging is not None and os.path.dirname(staging) == str(tmp_path / "opt")
    assert system is None
    assert os.listdir(tmp_path / "opt") == ["app"] and os.listdir(tmp_path / "tmp") == []
    assert meta.checksum_sha256 == checked.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert checked.compressed_size == len(data) and checked.file_count == 4
    assert stats["phases"]["spooling"]["count"] == 2


def test_a_zip_stream_over_the_limit_is_refused_before_anything_is_extracted(
    tmp_path: Path, sample_tree: Path
) -> None:
    """A stream has no end it must reach: its copy may be no larger than the members the
    total size limit lets through, with their headers (1 KiB a member)."""
    data = _archive(tmp_path, sample_tree, "zip").read_bytes()
    limits = ExtractionLimits(max_total_size=len(data) // 2, max_members=100)
    stream = Trickle(data)
    with pytest.raises(LimitExceededError, match="saved before it is read"), ArchiveManager(
        ArchiveConfig(limits=limits)
    ) as manager:
        manager.extract_archive(stream, tmp_path / "out")
    assert stream.read_to < len(data)  # it stopped there, not at the end
    assert not (tmp_path / "out").exists()
    assert sorted(os.listdir(tmp_path)) == ["app.zip", "app.zip.meta", "app.zip.sha256", "src"]


@pytest.mark.parametrize(
    "room", [lambda size: 0, lambda size: size - size % (1 << 20)], ids=["at once", "buffered"]
)
def test_a_full_disk_while_a_zip_stream_is_saved_leaves_the_destination_as_it_was(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch,
    room: Callable[[int], int],
) -> None:
    data = _archive(tmp_path, sample_tree, "zip").read_bytes()
    assert 0 < len(data) % (1 << 20) < io.DEFAULT_BUFFER_SIZE  # a last piece that is buffered
    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "VERSION").write_text("v1")
    # Full at once, or once the whole 1 MiB pieces are written and the last few KiB wait in
    # the buffer (which failed again as the spool was closed, an internal error).
    _Spools(monkeypatch, room=room(len(data)))
    with pytest.raises(DestinationError, match="no space left on device while writing a "
                       "temporary copy of <stream>"), ArchiveManager() as manager:
        manager.extract_archive(Trickle(data), dest, replace=True)
    assert os.listdir(dest) == ["VERSION"]
    assert sorted(os.listdir(tmp_path)) == ["app", "app.zip", "app.zip.meta", "app.zip.sha256",
                                            "src"]


@pytest.mark.parametrize("damage", ["member data", "truncated", "directory"])
def test_a_damaged_zip_stream_leaves_the_destination_as_it_was(
    tmp_path: Path, sample_tree: Path, damage: str
) -> None:
    data = _archive(tmp_path, sample_tree, "zip").read_bytes()
    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "VERSION").write_text("v1")
    bad = {
        "member data": lambda: _flip(data, len(data) // 2),  # in big.bin's deflated bytes
        "truncated": lambda: data[: len(data) - 200],  # into the central directory
        "directory": lambda: _flip(data, data.rindex(b"PK\x01\x02") + 16),  # a central CRC
    }[damage]()
    with pytest.raises((IntegrityError, CorruptArchiveError)), ArchiveManager() as manager:
        manager.extract_archive(Trickle(bad), dest, replace=True)
    assert os.listdir(dest) == ["VERSION"]
    assert sorted(os.listdir(tmp_path)) == ["app", "app.zip", "app.zip.meta", "app.zip.sha256",
                                            "src"]


def test_a_text_stream_is_a_type_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="binary"), ArchiveManager() as manager:
        manager.verify_archive(io.StringIO("x"))


@pytest.mark.parametrize("operation", ["verify", "extract"])
@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_progress_from_a_stream_has_no_total_until_its_end(
    tmp_path: Path, sample_tree: Path, fmt: str, operation: str
) -> None:
    """A zip's progress follows the stream as it is saved (its 3 MiB arrive in pieces), then
    stays there while the saved copy is read: one series that only grows."""
    data = _archive(tmp_path, sample_tree, fmt).read_bytes()
    calls: list[tuple[int, int]] = []
    config = ArchiveConfig(progress_callback=lambda done, total: calls.append((done, total)))
    with ArchiveManager(config) as manager:
        if operation == "verify":
            manager.verify_archive(Trickle(data))
        else:
            manager.extract_archive(Trickle(data), tmp_path / "out")
    assert calls[-1] == (len(data), len(data))
    assert all(total == 0 for _, total in calls[:-1])
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    if fmt == "zip":  # saved in 1 MiB pieces (a tar stream is decoded in 4 MiB ones)
        assert len({d for d, _ in calls if 0 < d < len(data)}) >= 2


def test_a_stream_that_is_a_regular_file_has_a_progress_total(
    tmp_path: Path, sample_tree: Path
) -> None:
    """``arcman extract - < app.tar.gz``: the bar can show a total, from where it starts."""
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"skipped" + _archive(tmp_path, sample_tree, "tar.gz").read_bytes())
    size = archive.stat().st_size - len(b"skipped")
    calls: list[tuple[int, int]] = []
    config = ArchiveConfig(progress_callback=lambda done, total: calls.append((done, total)))
    with ArchiveManager(config) as manager, archive.open("rb") as f:
        f.read(len(b"skipped"))
        meta = manager.verify_archive(f)
    assert {total for _, total in calls} == {size}
    assert meta.compressed_size == size


def _pipe(data: bytes) -> io.BufferedReader:
    """A real pipe (what ``ssh`` or ``curl |`` gives), fed from a thread."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as out:
            out.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return open(read_end, "rb")


@pytest.mark.needs_zstd
def test_verify_and_list_a_pipe(tmp_path: Path, sample_tree: Path) -> None:
    data = _archive(tmp_path, sample_tree, "tar.zst").read_bytes()
    with ArchiveManager() as manager, _pipe(data) as one, _pipe(data) as two:
        meta = manager.verify_archive(one)
        names = {e.name for e in manager.list_archive(two)}
    assert meta.verification == "manifest" and meta.file_count == 4
    assert {"a.txt", "sub/big.bin", "link"} <= names


def _cli(args: list[str], stdin: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcman", *args], stdin=stdin, capture_output=True, text=True,
        timeout=120,
    )


def test_cli_extracts_standard_input(tmp_path: Path, sample_tree: Path) -> None:
    archive = _archive(tmp_path, sample_tree, "tar.gz")
    dest = tmp_path / "app"
    with open(archive, "rb") as stdin:
        done = _cli(["extract", "-", "-C", str(dest)], stdin)
    assert done.returncode == 0, done.stderr
    assert "verified by manifest" in done.stdout
    assert snapshot(dest) == snapshot(sample_tree)
    with open(archive, "rb") as stdin:
        listed = _cli(["list", "-"], stdin)
    assert "sub/big.bin" in listed.stdout.split()


def test_cli_refuses_a_terminal_as_the_archive(tmp_path: Path) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        done = _cli(["verify", "-"], terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "arcman: error: the archive '-' is standard input, which is a terminal: pipe one in"
    )


def test_cli_says_standard_input_is_closed(tmp_path: Path) -> None:
    done = subprocess.run(
        ["/bin/sh", "-c", f"exec {sys.executable} -m arcman verify - <&-"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "standard input, which is closed" in done.stderr


def test_cli_does_not_write_an_archive_to_a_closed_standard_output(
    tmp_path: Path, sample_tree: Path
) -> None:
    """Closed, stdout is replaced by /dev/null (see main): the archive would vanish."""
    done = subprocess.run(
        ["/bin/sh", "-c",
         f"exec {sys.executable} -m arcman create {sample_tree} -o - --format tar >&-"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "standard output, which is closed" in done.stderr


def test_cli_reads_a_zip_from_a_pipe(tmp_path: Path, sample_tree: Path) -> None:
    """curl .../app.zip | arcman extract - -C DEST (and verify, list): saved, then read."""
    archive = _archive(tmp_path, sample_tree, "zip")
    runs = {}
    for command in (["extract", "-", "-C", str(tmp_path / "out")], ["verify", "-"], ["list", "-"]):
        cat = subprocess.Popen(["cat", str(archive)], stdout=subprocess.PIPE)
        runs[command[0]] = _cli(command, cat.stdout)
        assert cat.stdout is not None
        cat.stdout.close()
        cat.wait()
    assert all(done.returncode == 0 for done in runs.values()), runs
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)
    assert "sub/big.bin" in runs["list"].stdout


@pytest.mark.parametrize("fmt", [*TAR_FORMATS, "zip"])
def test_create_into_a_stream_writes_the_same_archive_as_into_a_file(
    tmp_path: Path, sample_tree: Path, fmt: str
) -> None:
    """Reproducible, the stream's bytes are the file's; and no sidecar is written anywhere."""
    config = ArchiveConfig(reproducible=True, format=CompressionFormat(fmt))
    stream = io.BytesIO()
    with ArchiveManager(config) as manager:
        meta = manager.create_archive(sample_tree, stream)
        manager.create_archive(sample_tree, tmp_path / f"a.{fmt}")
    assert stream.getvalue() == (tmp_path / f"a.{fmt}").read_bytes()
    assert meta.compressed_size == len(stream.getvalue())
    assert meta.checksum_sha256 == hashlib.sha256(stream.getvalue()).hexdigest()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [f"a.{fmt}", f"a.{fmt}.sha256", f"a.{fmt}.meta", "src"]
    )


def test_create_into_a_stream_needs_a_format(tmp_path: Path, sample_tree: Path) -> None:
    with pytest.raises(ConfigError, match="needs a format"), ArchiveManager() as manager:
        manager.create_archive(sample_tree, io.BytesIO())


@pytest.mark.needs_zstd
def test_cli_pipes_create_into_extract(tmp_path: Path, sample_tree: Path) -> None:
    """arcman create ... -o - | arcman extract - -C DEST: no archive file anywhere, and the
    result line (with the checksum, as there is no sidecar) on stderr, out of the stream."""
    dest = tmp_path / "app"
    create = subprocess.Popen(
        [sys.executable, "-m", "arcman", "create", str(sample_tree), "-o", "-",
         "--format", "tar.zst"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False,
    )
    assert create.stdout is not None
    extracted = _cli(["extract", "-", "-C", str(dest)], create.stdout)
    create.stdout.close()
    _, err = create.communicate(timeout=120)
    assert create.returncode == 0, err
    assert extracted.returncode == 0, extracted.stderr
    assert snapshot(dest) == snapshot(sample_tree)
    assert re.fullmatch(rb"created -: 4 files, .* sha256 [0-9a-f]{64}\n", err)
    assert sorted(os.listdir(tmp_path)) == ["app", "src"]


def test_cli_refuses_to_write_an_archive_to_a_terminal(tmp_path: Path, sample_tree: Path) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "arcman", "create", str(sample_tree), "-o", "-",
             "--format", "tar"],
            stdout=terminal, stderr=subprocess.PIPE, text=True, timeout=120,
        )
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == 2
    assert "standard output, which is a terminal" in done.stderr


def test_a_stream_is_read_to_its_end_and_checked_against_the_sha256_given(
    tmp_path: Path, sample_tree: Path
) -> None:
    """A tar's end can come well before the stream's (zeros that a blocking factor or a
    device adds): the checksum covers the whole stream, and a wrong one commits nothing.
    Sequentially, as nothing reads ahead there."""
    data = _archive(tmp_path, sample_tree, "tar").read_bytes() + bytes(12 * 2**20)
    digest = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "VERSION").write_text("v1")
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        with pytest.raises(IntegrityError, match="does not match the SHA-256 given"):
            manager.extract_archive(Trickle(data), dest, replace=True,
                                    expected_sha256=hashlib.sha256(b"other").hexdigest())
        assert os.listdir(dest) == ["VERSION"]
        meta = manager.extract_archive(Trickle(data), dest, replace=True,
                                       expected_sha256=digest.upper())
    assert meta.checksum_sha256 == digest and meta.compressed_size == len(data)
    assert snapshot(dest) == snapshot(sample_tree)


def test_cli_sha256_replaces_the_sidecar_for_a_file(tmp_path: Path, sample_tree: Path) -> None:
    archive = _archive(tmp_path, sample_tree, "tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    sidecar = Path(f"{archive}.sha256")
    sidecar.write_text(hashlib.sha256(b"stale").hexdigest() + "  app.tar.gz\n")
    assert _cli(["verify", str(archive)], None).returncode == 1  # the sidecar disagrees
    done = _cli(["verify", str(archive), "--sha256", digest], None)
    assert done.returncode == 0, done.stderr
    wrong = _cli(["extract", str(archive), "-C", str(tmp_path / "out"), "--sha256", "0" * 64],
                 None)
    assert wrong.returncode == 1 and "does not match the SHA-256 given" in wrong.stderr
    assert not (tmp_path / "out").exists()
    bad = _cli(["verify", str(archive), "--sha256", "abc"], None)
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr


class Grudging(io.RawIOBase):
    """A raw stream as a socket or an unbuffered non-blocking stdout is: each write takes at
    most ``step`` bytes, and every third one takes none (returns None: it would block)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.data = bytearray()
        self._step = step
        self._calls = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int | None:  # type: ignore[override]
        self._calls += 1
        if self._calls % 3 == 0:
            return None
        taken = bytes(memoryview(data)[: self._step])
        self.data += taken
        return len(taken)


@pytest.mark.parametrize("fmt", writable(FORMATS))
def test_a_stream_that_takes_part_of_each_write_gets_the_whole_archive(
    tmp_path: Path, sample_tree: Path, fmt: str
) -> None:
    """Short writes were counted as whole: the reader got a fraction of the archive, the
    result said it had all of it."""
    config = ArchiveConfig(reproducible=True, format=CompressionFormat(fmt))
    stream = Grudging(step=1000)
    with ArchiveManager(config) as manager:
        meta = manager.create_archive(sample_tree, stream)
        manager.create_archive(sample_tree, tmp_path / f"a.{fmt}")
    assert bytes(stream.data) == (tmp_path / f"a.{fmt}").read_bytes()
    assert meta.checksum_sha256 == hashlib.sha256(stream.data).hexdigest()


def test_a_stream_that_takes_nothing_for_good_is_a_destination_error(sample_tree: Path) -> None:
    class Full(Grudging):
        def write(self, data: Any) -> int:  # type: ignore[override]
            return 0

    config = ArchiveConfig(format=CompressionFormat.TAR)
    with ArchiveManager(config) as manager, pytest.raises(DestinationError, match="no more"):
        manager.create_archive(sample_tree, Full(step=0))


def test_a_closed_stream_is_a_typed_error(tmp_path: Path, sample_tree: Path) -> None:
    """Both were a bare ValueError ("I/O operation on closed file")."""
    closed = open(tmp_path / "out.tar", "wb")  # noqa: SIM115
    closed.close()
    reading = io.BytesIO(b"x" * 1000)
    reading.close()
    with ArchiveManager(ArchiveConfig(format=CompressionFormat.TAR)) as manager:
        with pytest.raises(DestinationError, match="closed file"):
            manager.create_archive(sample_tree, closed)
        with pytest.raises(SourceError, match="closed file"):
            manager.verify_archive(reading)


def test_cli_writes_the_whole_archive_to_a_non_blocking_unbuffered_pipe(
    tmp_path: Path, sample_tree: Path
) -> None:
    """``python -u`` makes stdout a raw stream; on a non-blocking pipe its writes are partial
    or would block. The reader got ~230 KB of 3 MB and arcman exited 0."""
    (sample_tree / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received = bytearray()

    def drain() -> None:
        import time

        while chunk := os.read(read_end, 65536):
            received.extend(chunk)
            time.sleep(0.001)  # a slow reader: the pipe fills

    reader = threading.Thread(target=drain)
    reader.start()
    done = subprocess.run(
        [sys.executable, "-u", "-m", "arcman", "create", str(sample_tree), "-o", "-",
         "--format", "tar", "-q"], stdout=write_end, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False,
    )
    os.close(write_end)
    reader.join()
    os.close(read_end)
    assert done.returncode == 0, done.stderr
    with ArchiveManager() as manager:
        manager.extract_archive(io.BytesIO(bytes(received)), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)


def test_an_output_that_is_a_fifo_is_written_through(tmp_path: Path, sample_tree: Path) -> None:
    """A finished file was renamed over it: the FIFO was gone (and its reader waited for
    ever), and .sha256/.meta were left beside it."""
    fifo = tmp_path / "pipe.tar.gz"
    os.mkfifo(fifo)
    received = bytearray()

    def read() -> None:
        with open(fifo, "rb") as f:
            received.extend(f.read())

    reader = threading.Thread(target=read, daemon=True)  # blocked for ever if the FIFO goes
    reader.start()
    with ArchiveManager() as manager:
        meta = manager.create_archive(sample_tree, fifo)
    reader.join(timeout=30)
    assert fifo.is_fifo() and sorted(os.listdir(tmp_path)) == ["pipe.tar.gz", "src"]
    assert meta.checksum_sha256 == hashlib.sha256(received).hexdigest()
    with ArchiveManager() as manager:
        manager.extract_archive(io.BytesIO(bytes(received)), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)


@pytest.mark.parametrize("target", ["v1.tar.gz", "missing.tar.gz"])
def test_an_output_that_is_a_symlink_is_refused(
    tmp_path: Path, sample_tree: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-o latest.tar.gz` (a link to v1.tar.gz) replaced the link with the archive: the link
    was gone without a word, v1.tar.gz left as it was. Refused, as a symlink DEST is; a
    device reached through a link (`-o /dev/stdout`) is still written through."""
    (tmp_path / "v1.tar.gz").write_bytes(b"release 1")
    link = tmp_path / "latest.tar.gz"
    link.symlink_to(target)
    assert main(["create", str(sample_tree), "-o", str(link), "-q"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is a symlink (to {target!r})" in err
    with ArchiveManager() as manager, pytest.raises(DestinationError, match="is a symlink"):
        manager.create_archive(sample_tree, link)
    assert os.readlink(link) == target and (tmp_path / "v1.tar.gz").read_bytes() == b"release 1"
    assert sorted(os.listdir(tmp_path)) == ["latest.tar.gz", "src", "v1.tar.gz"]
    if os.path.exists("/dev/stdout") and os.path.islink("/dev/stdout"):
        done = subprocess.run(
            [sys.executable, "-m", "arcman", "create", str(sample_tree), "-o", "/dev/stdout",
             "--format", "tar.gz", "-q"], capture_output=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        with ArchiveManager() as manager:
            manager.extract_archive(io.BytesIO(done.stdout), tmp_path / "out")
        assert snapshot(tmp_path / "out") == snapshot(sample_tree)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mknod needs root")
def test_an_output_that_is_a_device_stays_one(tmp_path: Path, sample_tree: Path) -> None:
    """`-o /dev/null --format tar` replaced /dev/null with a regular file."""
    import stat

    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert main(["create", str(sample_tree), "-o", str(null), "--format", "tar", "-q"]) == 0
    assert stat.S_ISCHR(null.lstat().st_mode)
    assert sorted(os.listdir(tmp_path)) == ["null", "src"]
