"""AtomicFile: the content and hash of what was written, and writeback started along the way."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import _atomic
from arcman._atomic import AtomicFile

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="writeback hint is Linux-only")


@linux_only
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 3000), max_size=12))
def test_writeback_is_started_on_flushed_bytes_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int]
) -> None:
    pieces = [bytes(range(i, i + 7)) * (n // 7) + bytes(n % 7) for i, n in enumerate(sizes)]
    monkeypatch.setattr(_atomic, "WRITEBACK_BYTES", 1000)
    hinted: list[tuple[int, int]] = []
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_DONTNEED
        assert os.fstat(fd).st_size >= offset + length  # flushed before the hint, not buffered
        hinted.append((offset, length))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    target = tmp_path / "out.bin"
    target.unlink(missing_ok=True)
    with AtomicFile(str(target)) as out:
        for piece in pieces:
            out.write(piece)
    data = b"".join(pieces)
    assert target.read_bytes() == data
    assert out.sha256 == hashlib.sha256(data).hexdigest()
    # Contiguous from the start, each at least WRITEBACK_BYTES, covering all but the tail.
    position = 0
    for offset, length in hinted:
        assert offset == position and length >= 1000
        position += length
    assert len(data) - position < 1000


@linux_only
def test_a_refused_writeback_hint_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(_atomic, "WRITEBACK_BYTES", 100)
    monkeypatch.setattr(os, "posix_fadvise", refuse)
    target = tmp_path / "out.bin"
    with AtomicFile(str(target)) as out:
        for i in range(50):
            out.write(bytes([i]) * 37)
    assert target.read_bytes() == b"".join(bytes([i]) * 37 for i in range(50))


def _leftover(parent: Path, owner: str) -> Path:
    stale = parent / f".app.arcman-staging-{owner}-0badcafe"
    stale.mkdir(parents=True)
    (stale / "f").write_text("x")
    return stale


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process identities from /proc")
def test_leftover_of_a_reused_pid_is_removed(tmp_path: Path) -> None:
    """After a reboot (a power cut on a Pi) a dead run's pid may belong to a daemon: its
    leftovers were kept for ever, as a live run's. The name's tag of its maker's identity
    (boot id and start time since boot) tells the two apart; a name without a tag (an older
    arcman's) keeps the pid-only check."""
    import subprocess

    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            tag = _atomic._identity(other.pid)
            assert tag is not None and tag == _atomic._identity(other.pid)
            other_tag = f"{(int(tag, 16) + 1) % 0x10000:04x}"
            running = _leftover(tmp_path / "a", f"{other.pid}-{tag}")
            untagged = _leftover(tmp_path / "b", str(other.pid))
            reused = _leftover(tmp_path / "c", f"{other.pid}-{other_tag}")
            for sub in "abc":
                _atomic.clean_stale(str(tmp_path / sub / "app"))
            assert running.exists() and untagged.exists()
            assert not reused.exists()
        finally:
            other.kill()


def test_own_leftover_from_before_a_reboot_is_removed(tmp_path: Path) -> None:
    """This very pid, with another identity: a run before a reboot that had the same pid."""
    tag = _atomic._identity("self")
    if tag is None:
        pytest.skip("no process identities here")
    other_tag = f"{(int(tag, 16) + 1) % 0x10000:04x}"
    stale = _leftover(tmp_path, f"{os.getpid()}-{other_tag}")
    live = _leftover(tmp_path, f"{os.getpid()}-{tag}")
    _atomic.clean_stale(str(tmp_path / "app"))
    assert not stale.exists() and live.exists()


def test_temporary_names_carry_the_tag_and_match_the_pattern(tmp_path: Path) -> None:
    name = os.path.basename(_atomic.sibling(str(tmp_path / "app"), _atomic.STAGING_MARKER))
    match = _atomic._SIBLING.fullmatch(name)
    assert match is not None and match["name"] == "app" and int(match["pid"]) == os.getpid()
    assert match["tag"] == _atomic._identity("self")


def _dead_pid() -> int:
    import subprocess

    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def _tree(path: Path, version: str) -> Path:
    path.mkdir()
    (path / "VERSION").write_text(version)
    return path


def test_a_waiting_new_tree_is_removed_and_an_exchanged_old_one_kept(tmp_path: Path) -> None:
    """A -next- name records its tree's inode: still that tree, it was never deployed; another
    one (the exchange happened) is DEST's old tree, which replaces the older DEST.prev."""
    pid = _dead_pid()
    for case, exchanged in (("a", False), ("b", True)):
        (tmp_path / case).mkdir()
        dest = _tree(tmp_path / case / "app", "new" if exchanged else "old")
        _tree(tmp_path / case / "app.prev", "older")
        waiting = _tree(tmp_path / case / "w", "old" if exchanged else "new")
        recorded = (dest if exchanged else waiting).stat().st_ino
        waiting.rename(tmp_path / case / f".app.arcman-next-{pid}-0badcafe-{recorded}")
        _atomic.clean_stale(str(dest))
        _atomic.clean_stale(str(tmp_path / case / "app.prev"))
        state = [(p.name, (p / "VERSION").read_text()) for p in sorted(dest.parent.iterdir())]
        if exchanged:
            assert state == [("app", "new"), ("app.prev", "old")]
        else:
            assert state == [("app", "old"), ("app.prev", "older")]


def test_a_deployed_tree_that_cannot_be_moved_back_is_never_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _dead_pid()
    kept = _tree(tmp_path / f".app.arcman-prev-{pid}-0badcafe", "old")

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted", dst)

    monkeypatch.setattr(_atomic.os, "rename", refuse)
    _atomic.clean_stale(str(tmp_path / "app"))
    assert (kept / "VERSION").read_text() == "old"
