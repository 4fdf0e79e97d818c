"""The benchmark harness's clean-up: no run pays for deleting the tree another run left.

ext4 without a journal avoids reusing freed inodes for 60-360 s and scans past them, so a large
extracted tree must not be deleted just before the next timed run, and the trees kept must not
fill the page cache (see run.Trash).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import load_bench

run = load_bench("run")


def _tree(root: Path, files: int) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(files):
        (root / "sub" / f"f{i}").write_bytes(b"x")
    return root


def _extract_tool(dest: Path, trash: object) -> object:
    return run.Tool(name="t", op="extract", command="true", cwd=dest.parent, arcman=False,
                    dest=dest, mkdir_dest=True, trash=trash)


def test_large_trees_wait_in_the_trash_until_it_is_emptied(tmp_path: Path) -> None:
    trash = run.Trash(tmp_path / "trash")
    dest = tmp_path / "dest"
    tool = _extract_tool(dest, trash)
    kept = []
    for _ in range(2):
        tool.prepare()
        _tree(dest, run.Trash.BULK)
        tool.cleanup()
        assert not dest.exists()
        kept = sorted(p.name for p in (tmp_path / "trash").iterdir())
    assert kept == ["1", "2"], "each run's tree is kept apart, none deleted"
    assert len(list((tmp_path / "trash" / "2" / "sub").iterdir())) == run.Trash.BULK
    logged: list[str] = []
    trash.empty(wait=False, log=logged.append)
    assert not (tmp_path / "trash").exists() and logged


def test_small_trees_are_deleted_at_once(tmp_path: Path) -> None:
    trash = run.Trash(tmp_path / "trash")
    dest = tmp_path / "dest"
    tool = _extract_tool(dest, trash)
    tool.prepare()
    _tree(dest, run.Trash.BULK - 10)
    tool.cleanup()
    assert not dest.exists() and not (tmp_path / "trash").exists()
    trash.empty(wait=True, log=print)  # nothing to delete: returns without waiting


def test_without_a_trash_trees_are_deleted_after_their_run(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    tool = _extract_tool(dest, None)
    tool.prepare()
    _tree(dest, run.Trash.BULK)
    tool.cleanup()
    assert not dest.exists()


def test_kept_trees_leave_the_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every regular file of a tree moved to the trash is written back and its pages dropped;
    a symlink is not followed."""
    dropped: list[tuple[int, int, int]] = []
    monkeypatch.setattr(run.os, "posix_fadvise", lambda *call: dropped.append(call[1:]),
                        raising=False)
    synced: list[bool] = []
    monkeypatch.setattr(run.os, "sync", lambda: synced.append(True))
    trash = run.Trash(tmp_path / "trash")
    dest = _tree(tmp_path / "dest", run.Trash.BULK)
    (dest / "link").symlink_to("/etc/passwd")
    trash.take(dest)
    assert synced
    assert dropped == [(0, 0, os.POSIX_FADV_DONTNEED)] * run.Trash.BULK
    assert (tmp_path / "trash" / "1" / "sub" / "f0").read_bytes() == b"x"
