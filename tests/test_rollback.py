"""Deploy with --keep-previous, undo with rollback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arcman import ArchiveManager, ConfigError, DestinationError
from arcman._atomic import OLD_MARKER, PREV_MARKER
from arcman._cli import main
from arcman._extract import commit as commit_module
from arcman._extract.writeback import Writeback


def _release(tmp_path: Path, version: str) -> Path:
    tree = tmp_path / f"build-{version}"
    (tree / "bin").mkdir(parents=True)
    (tree / "VERSION").write_text(version)
    (tree / "bin" / f"only-in-{version}").write_text(version)
    archive = tmp_path / f"app-{version}.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


def test_keep_previous_then_rollback_and_forward(tmp_path: Path) -> None:
    v1, v2, v3 = (_release(tmp_path, v) for v in ("v1", "v2", "v3"))
    dest = tmp_path / "opt" / "app"
    prev = tmp_path / "opt" / "app.prev"
    dest.parent.mkdir()
    assert main(["extract", str(v1), "-C", str(dest), "-q"]) == 0
    assert main(["extract", str(v2), "-C", str(dest), "--replace", "--keep-previous", "-q"]) == 0
    assert (dest / "VERSION").read_text() == "v2"
    assert (prev / "VERSION").read_text() == "v1"
    assert main(["rollback", str(dest), "-q"]) == 0
    assert (dest / "VERSION").read_text() == "v1"
    assert (prev / "VERSION").read_text() == "v2"
    assert not (dest / "bin" / "only-in-v2").exists()
    assert main(["rollback", str(dest), "-q"]) == 0  # and forward again
    assert (dest / "VERSION").read_text() == "v2"
    # A new deploy replaces the older .prev; nothing is left beside the destination.
    with ArchiveManager() as manager:
        manager.extract_archive(v3, dest, replace=True, keep_previous=True)
    assert (dest / "VERSION").read_text() == "v3"
    assert (prev / "VERSION").read_text() == "v2"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app", "app.prev"]


def test_replace_without_keep_previous_leaves_no_prev(tmp_path: Path) -> None:
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True)
    assert not (tmp_path / "app.prev").exists()


def test_failed_deploy_keeps_the_current_tree_and_prev(tmp_path: Path) -> None:
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True, keep_previous=True)
    bad = tmp_path / "bad.tar.gz"
    data = bytearray(v1.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    code = main(["extract", str(bad), "-C", str(dest), "--replace", "--keep-previous", "-q",
                 "--no-verify"])
    assert code in (1, 3)
    assert (dest / "VERSION").read_text() == "v2"
    assert (tmp_path / "app.prev" / "VERSION").read_text() == "v1"


def test_rollback_without_prev_is_a_destination_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(DestinationError, match=r"app\.prev"):
        ArchiveManager().rollback(tmp_path / "app")
    assert main(["rollback", str(tmp_path / "app")]) == 5
    assert "cannot roll back" in capsys.readouterr().err


def test_keep_previous_needs_replace(tmp_path: Path) -> None:
    v1 = _release(tmp_path, "v1")
    assert main(["extract", str(v1), "-C", str(tmp_path / "x"), "--keep-previous"]) == 2
    with ArchiveManager() as manager, pytest.raises(ConfigError, match="needs replace"):
        manager.extract_archive(v1, tmp_path / "y", keep_previous=True)
    assert not (tmp_path / "y").exists()


def _deployed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """app = v2 and app.prev = v1; returns (v3 archive, app, app.prev)."""
    v1, v2, v3 = (_release(tmp_path, v) for v in ("v1", "v2", "v3"))
    dest = tmp_path / "opt" / "app"
    dest.parent.mkdir()
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True, keep_previous=True)
    return v3, dest, tmp_path / "opt" / "app.prev"


def _refuse_rename(
    monkeypatch: pytest.MonkeyPatch, to: Path | None = None, source: Path | None = None,
    error: BaseException | None = None,
) -> None:
    """Make commit's first os.rename to ``to`` or from ``source`` fail (OSError EPERM, or
    ``error``); later ones, as the undo's, succeed."""
    real = os.rename
    refused: list[str] = []

    def rename(src: str, dst: str) -> None:
        hit = (to is not None and dst == str(to)) or (source is not None and src == str(source))
        if hit and not refused:
            refused.append(dst)
            raise error or PermissionError(errno.EPERM, "Operation not permitted", dst)
        real(src, dst)

    monkeypatch.setattr(commit_module.os, "rename", rename)


def _assert_untouched(dest: Path, prev: Path) -> None:
    assert (dest / "VERSION").read_text() == "v2"
    assert (dest / "bin" / "only-in-v2").exists()
    assert (prev / "VERSION").read_text() == "v1"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app", "app.prev"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-fallback"])
@pytest.mark.parametrize("step", ["prev-aside", "old-to-prev", "ctrl-c-old-to-prev"])
def test_failed_commit_keeps_dest_and_prev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool, step: str
) -> None:
    """A commit refused at any step (an immutable .prev, Ctrl-C) changes neither tree."""
    v3, dest, prev = _deployed(tmp_path)
    if not exchange:
        monkeypatch.setattr(commit_module, "_exchange", lambda a, b: False)
    ctrl_c = step.startswith("ctrl-c")
    if step == "prev-aside":
        _refuse_rename(monkeypatch, source=prev)
    else:
        _refuse_rename(monkeypatch, to=prev, error=KeyboardInterrupt() if ctrl_c else None)
    expected = KeyboardInterrupt if ctrl_c else DestinationError
    with pytest.raises(expected), ArchiveManager() as manager:
        manager.extract_archive(v3, dest, replace=True, keep_previous=True)
    _assert_untouched(dest, prev)


def test_commit_that_cannot_be_undone_keeps_the_old_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an exchange call, if keeping the old tree as .prev fails and so does putting
    it back, the old tree is not deleted: the error says where it is."""
    v3, dest, prev = _deployed(tmp_path)
    monkeypatch.setattr(commit_module, "_exchange", lambda a, b: False)
    real = os.rename

    def rename(src: str, dst: str) -> None:
        # The old tree, out of DEST under a -prev- name, can go neither on to .prev nor back.
        if PREV_MARKER in src and dst in (str(prev), str(dest)):
            raise PermissionError(errno.EPERM, "Operation not permitted", dst)
        real(src, dst)

    monkeypatch.setattr(commit_module.os, "rename", rename)
    with pytest.raises(DestinationError, match="it is at") as caught, ArchiveManager() as m:
        m.extract_archive(v3, dest, replace=True, keep_previous=True)
    where = Path(str(caught.value).rsplit("it is at ", 1)[1].strip("'"))
    assert (where / "VERSION").read_text() == "v2"
    assert (dest / "VERSION").read_text() == "v3"
    assert (prev / "VERSION").read_text() == "v1"


def test_older_prev_moved_aside_by_a_killed_commit_is_restored(tmp_path: Path) -> None:
    """A commit killed (SIGKILL) after moving app.prev aside: the next run puts it back."""
    v3, dest, prev = _deployed(tmp_path)
    pid = subprocess.Popen(["true"])
    pid.wait()  # a process that no longer exists
    aside = prev.parent / f".app.prev{OLD_MARKER}{pid.pid}-0badcafe"
    prev.rename(aside)
    with ArchiveManager() as manager:
        manager.extract_archive(v3, dest, replace=True, keep_previous=True)
    assert (dest / "VERSION").read_text() == "v3"
    assert (prev / "VERSION").read_text() == "v2"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app", "app.prev"]


def test_previous_tree_is_reported_only_when_one_was_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest, prev = tmp_path / "newd", tmp_path / "newd.prev"
    deploy = ["-C", str(dest), "--replace", "--keep-previous"]
    assert main(["extract", str(v1), *deploy, "--json"]) == 0  # DEST missing: nothing to keep
    assert "previous" not in json.loads(capsys.readouterr().out)
    shutil.rmtree(dest)
    dest.mkdir()
    assert main(["extract", str(v1), *deploy]) == 0  # DEST empty: nothing to keep
    assert "previous tree kept" not in capsys.readouterr().out
    assert not prev.exists()
    assert main(["extract", str(v2), *deploy]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"; previous tree kept as {prev}")
    assert main(["extract", str(v1), *deploy, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["previous"] == str(prev)
    assert (prev / "VERSION").read_text() == "v2"


@pytest.mark.parametrize("step", ["dest-aside", "prev-in", "old-to-prev"])
def test_rollback_without_an_exchange_call_undoes_a_failed_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The three-rename fallback (no renameat2) puts both trees back when a rename fails."""
    _, dest, prev = _deployed(tmp_path)
    monkeypatch.setattr(commit_module, "_exchange", lambda a, b: False)
    if step == "dest-aside":
        _refuse_rename(monkeypatch, source=dest)
    elif step == "prev-in":
        _refuse_rename(monkeypatch, source=prev)
    else:
        _refuse_rename(monkeypatch, to=prev)
    with pytest.raises(DestinationError):
        ArchiveManager().rollback(dest)
    _assert_untouched(dest, prev)


@pytest.mark.parametrize("keep_previous", [False, True])
def test_signal_while_the_replaced_tree_is_removed_still_reports_the_deploy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    keep_previous: bool,
) -> None:
    """Once the new tree is at DEST, removing the old one (seconds for a big tree on an SD
    card) is cleanup: Ctrl-C or SIGTERM then must not exit 130/143 "interrupted", which says
    DEST is as it was, while the new version is deployed."""
    v1, v2, v3 = (_release(tmp_path, v) for v in ("v1", "v2", "v3"))
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True, keep_previous=keep_previous)

    def interrupted(path: str) -> None:  # a successful run removes only what was replaced
        raise KeyboardInterrupt

    monkeypatch.setattr(commit_module, "remove_tree", interrupted)
    args = ["extract", str(v3), "-C", str(dest), "--replace", "-q"]
    assert main(args + (["--keep-previous"] if keep_previous else [])) == 0
    assert (dest / "VERSION").read_text() == "v3"
    if keep_previous:
        assert (tmp_path / "app.prev" / "VERSION").read_text() == "v2"
    assert "interrupted while removing" in caplog.text  # the rest is removed by the next run


@pytest.mark.parametrize("keep_previous", [False, True])
def test_new_tree_is_on_disk_before_it_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_previous: bool
) -> None:
    """A power cut right after the commit must not leave a tree of empty files (ext4 writes a
    new file's data after a rename) with the old tree deleted: the staged data is written to
    disk before the first rename, and the renames before the old tree is removed."""
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        if keep_previous:  # a .prev, which the deploy discards
            manager.extract_archive(v1, dest, replace=True, keep_previous=True)
    events: list[str] = []
    real_rename, real_exchange = os.rename, commit_module._exchange
    real_remove = commit_module.remove_tree

    def rename(src: str, dst: str) -> None:
        events.append("rename")
        real_rename(src, dst)

    def exchange(a: str, b: str) -> bool:
        events.append("rename")
        return real_exchange(a, b)

    def remove_tree(path: str) -> None:
        events.append("remove")
        real_remove(path)

    monkeypatch.setattr(Writeback, "finish", lambda self: events.append("sync"))
    monkeypatch.setattr(commit_module, "_fsync_directory", lambda d: events.append("fsync-dir"))
    monkeypatch.setattr(commit_module.os, "rename", rename)
    monkeypatch.setattr(commit_module, "_exchange", exchange)
    monkeypatch.setattr(commit_module, "remove_tree", remove_tree)
    with ArchiveManager() as manager:
        manager.extract_archive(v2, dest, replace=True, keep_previous=keep_previous)
    assert (dest / "VERSION").read_text() == "v2"
    renames = [i for i, e in enumerate(events) if e == "rename"]
    assert events.index("sync") < renames[0] and renames[-1] < events.index("fsync-dir")
    assert events.index("fsync-dir") < events.index("remove")


_KILLED_AT = """
import os, sys
from arcman._extract import commit
dest, step, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
commit._exchange = lambda a, b: False  # the fallback: renames only
if command == "extract":
    staging = commit.make_staging(dest)
    with open(os.path.join(staging, "VERSION"), "w") as f:
        f.write("v2")
real, calls = os.rename, []
def rename(src, dst):
    calls.append(src)
    if len(calls) == step:
        os._exit(9)  # SIGKILL, a power cut: no handler runs
    real(src, dst)
os.rename = rename
if command == "extract":
    commit.commit(staging, dest, True, keep_previous=True)
else:
    commit.rollback(dest)
"""


@pytest.mark.parametrize(
    ("command", "step"),
    [("extract", n) for n in range(1, 6)] + [("rollback", n) for n in (1, 2, 3)],
)
def test_a_kill_between_two_renames_of_the_fallback_loses_no_deployment(
    tmp_path: Path, command: str, step: int
) -> None:
    """Without an exchange call, a keep-previous commit and a rollback take three renames.
    Killed after the new tree took DEST's place, the tree on its way to DEST.prev was under
    an -old- name, which the next run deleted (DEST existed): the previous deployment (for a
    rollback, the one rolled back from) was lost. Whatever step is killed, the next run finds
    one deployment at DEST and the other at DEST.prev."""
    dest, prev = tmp_path / "app", tmp_path / "app.prev"
    for tree, version in ((dest, "v1"), (prev, "v0")):
        tree.mkdir()
        (tree / "VERSION").write_text(version)
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_AT, str(dest), str(step), command], check=False
    )
    assert child.returncode == 9
    os.rmdir(commit_module.make_staging(str(dest)))  # the next run's cleanup
    found = (
        (dest / "VERSION").read_text(),
        (prev / "VERSION").read_text() if prev.exists() else "-",
    )
    # ("v1", "v2"): killed while the new tree waited under DEST.prev's name (the older .prev
    # was to be discarded anyway); DEST is as it was.
    expected = {
        "extract": [("v1", "v0"), ("v1", "v2"), ("v2", "v1")],
        "rollback": [("v1", "v0"), ("v0", "v1")],
    }
    assert found in expected[command]


def test_a_prev_that_is_a_symlink_is_unlinked_and_what_it_points_to_untouched(
    tmp_path: Path,
) -> None:
    """A DEST.prev symlink, discarded by a keep-previous deploy, was walked through: the
    directories it points to were made owner-writable (a 0o555 conf became 0o755), and the
    link was left beside DEST with a warning."""
    v1 = _release(tmp_path, "v1")
    dest, prev = tmp_path / "app", tmp_path / "app.prev"
    dest.mkdir()
    (dest / "VERSION").write_text("v0")
    outside = tmp_path / "elsewhere"
    (outside / "conf").mkdir(parents=True)
    (outside / "conf").chmod(0o555)
    prev.symlink_to(outside)
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest, replace=True, keep_previous=True)
    assert (prev / "VERSION").read_text() == "v0"
    assert ((outside / "conf").stat().st_mode & 0o777) == 0o555
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".app")]


def test_a_write_back_error_reported_by_syncfs_is_not_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs failing (EIO: the staged files' data did not reach the disk) was taken for
    "no syncfs": sync() was called, which reports nothing, and the tree was committed."""
    import ctypes

    if not sys.platform.startswith("linux"):
        pytest.skip("syncfs is Linux's")
    real = ctypes.CDLL

    class Libc:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self._real = real(None, use_errno=True)

        def syncfs(self, fd: int) -> int:
            ctypes.set_errno(errno.EIO)
            return -1

        def __getattr__(self, name: str) -> object:
            return getattr(self._real, name)

    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
    monkeypatch.setattr(ctypes, "CDLL", Libc)
    with pytest.raises(DestinationError, match="Input/output error"), ArchiveManager() as m:
        m.extract_archive(v2, dest, replace=True)
    assert (dest / "VERSION").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".app", "app"))) == [
        "app", "app-v1.tar.gz", "app-v1.tar.gz.meta", "app-v1.tar.gz.sha256",
        "app-v2.tar.gz", "app-v2.tar.gz.meta", "app-v2.tar.gz.sha256",
    ]


# Run in a child process: deploy v3 (or roll back) into DEST, killed (os._exit, as by SIGKILL:
# no handler runs) right after the commit's KILL_AT-th rename or exchange in DEST's directory.
_KILLED_CHILD = """
import os, sys
from arcman import ArchiveManager
from arcman._extract import commit

archive, dest, kill_at, exchange = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
parent = os.path.dirname(dest)
real_rename, real_exchange, steps = os.rename, commit._exchange, [0]

def step(path):
    if os.path.dirname(path) == parent:
        steps[0] += 1
        if steps[0] == kill_at:
            os._exit(9)

def rename(src, dst):
    real_rename(src, dst)
    step(dst)

def swap(a, b):
    if exchange == "no":
        return False
    done = real_exchange(a, b)
    step(b)
    return done

os.rename = rename
commit._exchange = swap
with ArchiveManager() as manager:
    if archive == "rollback":
        manager.rollback(dest)
    else:
        manager.extract_archive(archive, dest, replace=True, keep_previous=True)
"""


@pytest.mark.parametrize("exchange", ["yes", "no"], ids=["renameat2", "rename-fallback"])
@pytest.mark.parametrize("operation", ["deploy", "rollback"])
def test_a_commit_killed_at_any_step_is_settled_by_the_next_run(
    tmp_path: Path, exchange: str, operation: str
) -> None:
    """SIGKILL or a power cut between any two steps of a keep-previous commit (or a rollback),
    then the next run's cleanup: DEST and DEST.prev hold either the trees from before the
    commit or those after it, never a tree that was not deployed at DEST.prev, and no
    deployed tree is lost."""
    before, after = ("v2", "v1"), ("v1", "v2") if operation == "rollback" else ("v3", "v2")
    kill_at = 0
    while True:
        kill_at += 1
        case = tmp_path / str(kill_at)
        case.mkdir()
        v3, dest, prev = _deployed(case)
        archive = "rollback" if operation == "rollback" else str(v3)
        child = subprocess.run(
            [sys.executable, "-c", _KILLED_CHILD, archive, str(dest), str(kill_at), exchange],
            capture_output=True, text=True, timeout=60,
        )
        assert child.returncode in (0, 9), child.stderr
        commit_module.clean_stale(str(dest))  # what the next run does first
        commit_module.clean_stale(commit_module.previous_path(str(dest)))
        state = tuple((p / "VERSION").read_text() for p in (dest, prev))
        assert state in (before, after), f"killed after step {kill_at}: {state}"
        assert sorted(p.name for p in dest.parent.iterdir()) == ["app", "app.prev"]
        if child.returncode == 0:  # not killed: every step has been covered
            assert state == after
            break
