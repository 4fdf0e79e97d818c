"""arcman diff: added, removed, changed and mode-only paths, and its exit codes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from arcman import ArchiveManager
from arcman._cli import main


@pytest.fixture
def archived(tmp_path: Path, sample_tree: Path) -> tuple[Path, Path]:
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    copy = tmp_path / "copy"
    shutil.copytree(sample_tree, copy, symlinks=True)
    return archive, copy


def test_identical_tree_exits_0(
    archived: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, copy = archived
    os.utime(copy / "a.txt", (0, 0))  # mtimes are not compared
    assert main(["diff", str(archive), str(copy)]) == 0
    assert capsys.readouterr().out.strip() == "no differences"


def test_each_kind_of_difference_is_reported(
    archived: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, copy = archived
    (copy / "new.txt").write_text("new")
    (copy / "sub" / "deep" / "zero").unlink()
    (copy / "a.txt").write_text("HELLO\n")  # same size, other content
    (copy / "run.sh").chmod(0o700)
    (copy / "link").unlink()
    (copy / "link").symlink_to("run.sh")
    assert main(["diff", str(archive), str(copy), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["same"] is False
    assert result["added"] == ["new.txt"]
    assert result["removed"] == ["sub/deep/zero"]
    assert sorted(result["changed"]) == ["a.txt", "link"]
    assert result["mode_only"] == ["run.sh"]
    assert main(["diff", str(archive), str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["M a.txt", "M link", "+ new.txt", "m run.sh", "- sub/deep/zero"]


def test_missing_directory_is_a_source_error(
    archived: tuple[Path, Path], tmp_path: Path
) -> None:
    archive, _ = archived
    assert main(["diff", str(archive), str(tmp_path / "nope")]) == 4
