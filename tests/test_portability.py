"""Portability: what the build machine (macOS) and the target (a Raspberry Pi: FAT/exFAT
media, mount points, a 32-bit time_t) do differently from a Linux developer's ext4."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from arcman import ArchiveManager, DestinationError
from arcman._cli import main


def _archive(tmp_path: Path, name: str = "app.tar.gz") -> Path:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("data\n")
    archive = tmp_path / name
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


def test_a_mount_point_destination_is_refused_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A USB stick mounted at DEST: the staging tree is made beside DEST, on the parent's file
    system, and the final rename onto the mount point fails (EBUSY/EXDEV), after the whole
    extraction, with a message that does not say why."""
    archive = _archive(tmp_path)
    dest = tmp_path / "usb"
    dest.mkdir()
    real_ismount, real_rename = os.path.ismount, os.rename
    monkeypatch.setattr(os.path, "ismount", lambda p: os.fspath(p) == str(dest) or real_ismount(p))

    def rename(src: str, dst: str) -> None:  # what the kernel does to a rename onto a mount
        if os.fspath(dst) == str(dest):
            raise OSError(16, os.strerror(16), dst)
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    assert main(["extract", str(archive), "-C", str(dest), "-q"]) == 5
    assert "mount point" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["app.tar.gz", "app.tar.gz.meta", "app.tar.gz.sha256",
                                            "tree", "usb"]
    with pytest.raises(DestinationError, match="mount point"), ArchiveManager() as manager:
        manager.extract_archive(archive, dest, replace=True)
