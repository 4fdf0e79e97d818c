"""Hostile archives: every refusal raises a typed error and writes nothing."""

from __future__ import annotations

import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, UnsafeMemberError
from helpers import listing, tar_dir, tar_file, tar_link, tar_special, write_tar

HOSTILE_TARS = {
    "absolute": [tar_file("/etc/evil")],
    "dotdot": [tar_file("../evil")],
    "dotdot-inside": [tar_dir("a"), tar_file("a/../../evil")],
    "symlink-absolute": [tar_link("l", "/etc")],
    "symlink-outside": [tar_link("l", "../outside")],
    "symlink-nested-outside": [tar_dir("d"), tar_link("d/l", "../../outside")],
    # Each link looks harmless alone; together they leave the tree.
    "symlink-chain": [tar_dir("d"), tar_link("d/up", ".."), tar_link("x", "d/up/..")],
    "write-through-symlink": [tar_link("l", "."), tar_file("l/f")],
    "hardlink-outside": [tar_link("h", "../outside", hard=True)],
    "hardlink-absolute": [tar_link("h", "/etc/passwd", hard=True)],
    "hardlink-through-symlink": [
        tar_link("l", "."), tar_file("f"), tar_link("h", "l/f", hard=True)
    ],
    "chardev": [tar_special("dev", tarfile.CHRTYPE)],
    "blockdev": [tar_special("blk", tarfile.BLKTYPE)],
    "fifo": [tar_special("fifo", tarfile.FIFOTYPE)],
}


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return path


def _zip_symlink(path: Path, name: str, target: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, target)
    return path


def _assert_refused(archive: Path, tmp_path: Path, dest: Path) -> None:
    before = listing(tmp_path)
    with ArchiveManager() as manager, pytest.raises(UnsafeMemberError):
        manager.extract_archive(archive, dest)
    assert listing(tmp_path) == before  # no destination, no staging directory left beside it
    assert not (tmp_path.parent / "outside").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_is_refused(tmp_path: Path, case: str) -> None:
    archive = write_tar(tmp_path / "evil.tar", HOSTILE_TARS[case])
    _assert_refused(archive, tmp_path, tmp_path / "dest")


@pytest.mark.parametrize("case", ["dotdot", "symlink-chain", "fifo"])
def test_refusal_leaves_an_existing_destination_unchanged(tmp_path: Path, case: str) -> None:
    archive = write_tar(tmp_path / "evil.tar", HOSTILE_TARS[case])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep").write_text("old")
    with ArchiveManager() as manager, pytest.raises(UnsafeMemberError):
        manager.extract_archive(archive, dest, replace=True)
    assert listing(dest) == ["keep"]
    assert (dest / "keep").read_text() == "old"
    assert listing(tmp_path) == ["dest", "evil.tar"]


@pytest.mark.parametrize(
    "names",
    [["/abs"], ["../up"], ["a/../../up"], ["dir\\file"], ["C:/x"], ["c:x"], ["ok", "a/../../b"]],
)
def test_hostile_zip_names_are_refused(tmp_path: Path, names: list[str]) -> None:
    _assert_refused(_zip(tmp_path / "evil.zip", names), tmp_path, tmp_path / "dest")


@pytest.mark.parametrize("target", ["/etc", "../outside", "a/../../outside"])
def test_zip_symlink_outside_is_refused(tmp_path: Path, target: str) -> None:
    archive = _zip_symlink(tmp_path / "evil.zip", "l", target)
    _assert_refused(archive, tmp_path, tmp_path / "dest")


@pytest.mark.parametrize(
    "members",
    [
        *(pytest.param(HOSTILE_TARS[case], id=case) for case in sorted(HOSTILE_TARS)),
        # Resolved one after the other on disk, the links leave the tree: ``b`` is the
        # staging directory's parent, whatever order they come in.
        pytest.param([tar_link("a", "."), tar_link("b", "a/..")], id="chain-through-dot"),
        pytest.param([tar_link("b", "a/.."), tar_link("a", ".")], id="chain-link-first"),
        pytest.param(
            [tar_dir("d"), tar_link("d/e", ".."), tar_link("u", "d/e/d/e/..")], id="chain-deep"
        ),
    ],
)
def test_verify_refuses_what_extract_refuses(tmp_path: Path, members: list[Any]) -> None:
    """verify's OK means the archive extracts: every refusal of extract is verify's too."""
    archive = write_tar(tmp_path / "evil.tar", members)
    _assert_refused(archive, tmp_path, tmp_path / "dest")
    with ArchiveManager() as manager, pytest.raises(UnsafeMemberError):
        manager.verify_archive(archive)


def test_dots_inside_a_name_are_fine(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "ok.tar", [tar_file("a..b"), tar_file("..c"), tar_file("d.."), tar_file("./e")]
    )
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "dest")
    assert listing(tmp_path / "dest") == ["..c", "a..b", "d..", "e"]


def test_links_that_stay_inside_are_kept(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "ok.tar",
        [tar_dir("d"), tar_file("d/f", b"data"), tar_link("d/up", ".."), tar_link("s", "d/f"),
         tar_link("h", "d/f", hard=True)],
    )
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "dest")
    dest = tmp_path / "dest"
    assert (dest / "s").read_bytes() == b"data"
    assert (dest / "h").read_bytes() == b"data"
    assert (dest / "h").stat().st_ino == (dest / "d" / "f").stat().st_ino
    assert (dest / "d" / "up").resolve() == dest.resolve()


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6777, 0o1777])
def test_setuid_setgid_sticky_and_world_write_are_stripped(tmp_path: Path, mode: int) -> None:
    archive = write_tar(tmp_path / "s.tar", [tar_dir("d"), tar_file("d/f", b"x", mode)])
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "dest")
    got = stat.S_IMODE((tmp_path / "dest" / "d" / "f").stat().st_mode)
    assert got & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o022) == 0
    assert got & 0o755 == mode & 0o755


def test_member_count_limit(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "many.tar", [tar_file(f"f{i}") for i in range(5)])
    config = ArchiveConfig()
    config.limits = type(config.limits)(max_members=4)
    before = listing(tmp_path)
    with ArchiveManager(config) as manager, pytest.raises(UnsafeMemberError, match="members"):
        manager.extract_archive(archive, tmp_path / "dest")
    assert listing(tmp_path) == before


COMPONENTS = st.sampled_from(["a", "..", ".", "", "b..c", "..d", "ü"])


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(COMPONENTS, min_size=1, max_size=5), absolute=st.booleans())
def test_generated_member_names_stay_inside_or_are_refused(
    parts: list[str], absolute: bool
) -> None:
    name = ("/" if absolute else "") + "/".join(parts)
    kept = [p for p in parts if p not in ("", ".")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        archive = write_tar(base / "g.tar", [tar_file(name, b"payload")])
        dest = base / "dest"
        with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
            if name.startswith("/") or ".." in kept or not kept:
                with pytest.raises(UnsafeMemberError):
                    manager.extract_archive(archive, dest)
                assert listing(base) == ["g.tar"]
            else:
                manager.extract_archive(archive, dest)
                assert dest.joinpath(*kept).read_bytes() == b"payload"
