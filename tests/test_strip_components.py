"""strip_components (--strip-components): names lose their first components on the way into
the destination, every safety check judges the stripped path, and the manifest is still
checked against the names in the archive."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    ConfigError,
    ExtractionLimits,
    IntegrityError,
    UnsafeMemberError,
)
from arcman._diff import diff_tree
from arcman._extract.members import Member
from arcman._extract.safety import MemberGuard, normalize_name
from arcman._manifest import DIR, FILE, SYMLINK
from helpers import FORMATS, listing, snapshot, tool, writable


def _release(tmp_path: Path, sample_tree: Path, fmt: str, prefix: str = "app-1.2") -> Path:
    """An archive whose members all sit under ``prefix``, as a release tarball's do."""
    outer = tmp_path / "outer"
    inner = outer / prefix
    inner.parent.mkdir(parents=True)
    sample_tree.rename(inner)
    archive = tmp_path / f"release{fmt}"
    with ArchiveManager() as manager:
        manager.create_archive(outer, archive)
    inner.rename(sample_tree)
    return archive


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            payload = (data or {}).get(info.name)
            info.size = len(payload) if payload is not None else 0
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = link
    return info


@pytest.mark.parametrize("fmt", FORMATS)
def test_stripping_the_release_directory_extracts_its_content(
    tmp_path: Path, sample_tree: Path, fmt: str
) -> None:
    archive = _release(tmp_path, sample_tree, fmt)
    with ArchiveManager() as manager:
        meta = manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)
    assert meta.verification == "manifest"  # every member checked, under its archive name
    assert "sub/big.bin" in meta.files and "app-1.2/sub/big.bin" not in meta.files


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.lists(st.sampled_from(["a", "b.d", "v 1", "é"]), min_size=0, max_size=3),
    fmt=st.sampled_from(writable(["tar", "tar.zst", "zip"])),
)
def test_stripping_as_many_components_as_the_prefix_has_gives_the_tree_back(
    tmp_path_factory: pytest.TempPathFactory, prefix: list[str], fmt: str
) -> None:
    tmp_path = tmp_path_factory.mktemp("strip")
    tree = tmp_path / "tree"
    (tree / "d" / "e").mkdir(parents=True)
    (tree / "top.txt").write_bytes(b"top")
    (tree / "d" / "e" / "deep").write_bytes(os.urandom(100))
    (tree / "d" / "link").symlink_to("e/deep")
    outer = tmp_path / "outer"
    inner = outer.joinpath(*prefix) if prefix else outer
    inner.parent.mkdir(parents=True, exist_ok=True)
    tree.rename(inner)
    with ArchiveManager() as manager:
        manager.create_archive(outer, tmp_path / f"a.{fmt}")
        manager.extract_archive(tmp_path / f"a.{fmt}", tmp_path / "out",
                                strip_components=len(prefix))
    assert snapshot(tmp_path / "out") == snapshot(inner)


def test_a_file_above_the_stripped_depth_is_refused_not_lost(
    tmp_path: Path, sample_tree: Path
) -> None:
    """tar drops it without a word; it would be a file missing from the deployed tree."""
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)  # a.txt, run.sh, link sit at the top
        dest = tmp_path / "out"
        dest.mkdir()
        (dest / "VERSION").write_text("v1")
        with pytest.raises(UnsafeMemberError, match="would be lost"):
            manager.extract_archive(archive, dest, replace=True, strip_components=1)
    assert listing(dest) == ["VERSION"]
    assert listing(tmp_path) == ["a.tar.gz", "a.tar.gz.meta", "a.tar.gz.sha256", "out", "src"]


def test_two_members_that_strip_to_one_path_are_duplicates(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "a.tar",
        [_info("a", tarfile.DIRTYPE), _info("a/x"), _info("b", tarfile.DIRTYPE), _info("b/x")],
        {"a/x": b"first", "b/x": b"second"},
    )
    with pytest.raises(UnsafeMemberError, match="duplicate"), ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    assert listing(tmp_path) == ["a.tar"]


def test_a_symlink_is_judged_from_where_it_lands(tmp_path: Path) -> None:
    """``top/sub/l -> ../../x`` stays inside the archive's tree (it names ``x``), but once
    ``top/`` is stripped it would point out of the destination."""
    members = [_info("top", tarfile.DIRTYPE), _info("top/sub", tarfile.DIRTYPE),
               _info("top/sub/l", tarfile.SYMTYPE, "../../x")]
    archive = _tar(tmp_path / "a.tar", members)
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "whole")  # fine where nothing is stripped
        with pytest.raises(UnsafeMemberError, match="points outside"):
            manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    assert listing(tmp_path) == ["a.tar", "whole"]


def test_a_hardlink_target_is_stripped_too(tmp_path: Path) -> None:
    members = [_info("top", tarfile.DIRTYPE), _info("top/f"),
               _info("top/h", tarfile.LNKTYPE, "top/f")]
    archive = _tar(tmp_path / "a.tar", members, {"top/f": b"data"})
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    out = tmp_path / "out"
    assert listing(out) == ["f", "h"]
    assert os.stat(out / "f").st_ino == os.stat(out / "h").st_ino
    assert (out / "h").read_bytes() == b"data"
    with ArchiveManager() as manager:  # and diff takes the link as extract made it
        entries = manager.list_archive(archive, strip_components=1)
    assert diff_tree(entries, str(out), ArchiveConfig()).same


def test_a_leading_dot_counts_as_a_component_as_in_gnu_tar_and_bsdtar(tmp_path: Path) -> None:
    """``tar -C dir -cf a.tar .`` stores ``./top/x``: both tars strip ``.`` first."""
    members = [_info("./", tarfile.DIRTYPE), _info("./top", tarfile.DIRTYPE), _info("./top/x"),
               _info("./top/./sub//y"), _info("./top/h", tarfile.LNKTYPE, "./top/x")]
    archive = _tar(tmp_path / "a.tar", members, {"./top/x": b"x", "./top/./sub//y": b"y"})
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "one", strip_components=1)
        manager.extract_archive(archive, tmp_path / "two", strip_components=2)
    assert sorted(str(p.relative_to(tmp_path / "one")) for p in (tmp_path / "one").rglob("*")) == [
        "top", "top/h", "top/sub", "top/sub/y", "top/x"]
    assert sorted(str(p.relative_to(tmp_path / "two")) for p in (tmp_path / "two").rglob("*")) == [
        "h", "sub", "sub/y", "x"]
    assert os.stat(tmp_path / "two" / "h").st_ino == os.stat(tmp_path / "two" / "x").st_ino


@pytest.mark.parametrize("program", ["tar", "bsdtar"])
@pytest.mark.parametrize("count", [1, 2])
def test_the_tree_is_the_one_tar_extracts(
    tmp_path: Path, sample_tree: Path, program: str, count: int
) -> None:
    if tool(program) is None:
        pytest.skip(f"{program} is not installed")
    (tmp_path / "tree" / "top").mkdir(parents=True)
    sample_tree.rename(tmp_path / "tree" / "top" / "app")
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "-C", str(tmp_path / "tree"), "-cf", str(archive), "."], check=True)
    (tmp_path / "theirs").mkdir()
    flag = ["--strip-components", str(count)]
    subprocess.run([program, "-C", str(tmp_path / "theirs"), "-xf", str(archive), *flag],
                   check=True)
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "ours", strip_components=count)
    assert snapshot(tmp_path / "ours") == snapshot(tmp_path / "theirs")


def test_a_hardlink_to_a_target_above_the_stripped_depth_is_refused(tmp_path: Path) -> None:
    members = [_info("f"), _info("top", tarfile.DIRTYPE), _info("top/h", tarfile.LNKTYPE, "f")]
    archive = _tar(tmp_path / "a.tar", members, {"f": b"data"})
    with pytest.raises(UnsafeMemberError), ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    assert listing(tmp_path) == ["a.tar"]


def test_the_manifest_still_catches_a_changed_member(tmp_path: Path, sample_tree: Path) -> None:
    archive = _release(tmp_path, sample_tree, ".tar")
    data = bytearray(archive.read_bytes())
    data[data.index(b"hello\n")] ^= 0x01
    archive.write_bytes(bytes(data))
    Path(f"{archive}.sha256").unlink()  # which would tell first that the archive changed
    with pytest.raises(IntegrityError, match=r"app-1\.2/a\.txt"), ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out", strip_components=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [-1, True, 1.0, "1"])
def test_strip_components_must_be_a_count(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="strip_components"), ArchiveManager() as manager:
        manager.extract_archive(tmp_path / "a.tar", tmp_path / "out",
                                strip_components=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="strip_components"), ArchiveManager() as manager:
        manager.list_archive(tmp_path / "a.tar", strip_components=value)  # type: ignore[arg-type]


@pytest.mark.needs_zstd
def test_cli_strip_components(tmp_path: Path, sample_tree: Path) -> None:
    archive = _release(tmp_path, sample_tree, ".tar.zst")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "arcman", "extract", str(archive), *args],
                              capture_output=True, text=True, timeout=120)

    done = run("-C", str(tmp_path / "out"), "--strip-components", "1")
    assert done.returncode == 0, done.stderr
    assert snapshot(tmp_path / "out") == snapshot(sample_tree)
    too_deep = run("-C", str(tmp_path / "out2"), "--strip-components", "2")
    assert too_deep.returncode == 3 and len(too_deep.stderr.strip().splitlines()) == 1
    assert "would be lost" in too_deep.stderr
    negative = run("-C", str(tmp_path / "out3"), "--strip-components", "-1")
    assert negative.returncode == 2 and "strip_components" in negative.stderr
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_verify_and_list_keep_the_archive_names(tmp_path: Path, sample_tree: Path) -> None:
    archive = _release(tmp_path, sample_tree, ".zip")
    with ArchiveManager(ArchiveConfig()) as manager:
        names = [entry.name for entry in manager.list_archive(archive)]
    assert "app-1.2/a.txt" in names


def test_diff_compares_the_stripped_tree(tmp_path: Path, sample_tree: Path) -> None:
    """``arcman diff release.tar.gz /opt/app --strip-components 1``: the deployed tree against
    the archive it came from, as extract stripped it."""
    archive = _release(tmp_path, sample_tree, ".tar.gz")
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out", strip_components=1)

    def diff(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arcman", "diff", str(archive), str(tmp_path / "out"), *args],
            capture_output=True, text=True, timeout=120,
        )

    same = diff("--strip-components", "1")
    assert same.returncode == 0 and same.stdout.strip() == "no differences", same
    (tmp_path / "out" / "sub" / "deep" / "zero").write_bytes(b"changed")
    changed = diff("--strip-components", "1")
    assert changed.returncode == 1 and changed.stdout.split() == ["M", "sub/deep/zero"]
    unstripped = diff()
    assert unstripped.returncode == 1 and "- app-1.2/a.txt" in unstripped.stdout
    too_deep = diff("--strip-components", "2")
    assert too_deep.returncode == 3 and "would be lost" in too_deep.stderr
    negative = diff("--strip-components", "-1")
    assert negative.returncode == 2 and len(negative.stderr.strip().splitlines()) == 1


_PARTS = st.sampled_from(["a", "b", ".", "..", "", "é", "c\\d"])
_NAMES = st.lists(_PARTS, min_size=1, max_size=5).map("/".join)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(_NAMES, st.sampled_from([FILE, DIR, SYMLINK]), _NAMES), max_size=8),
    st.integers(0, 3),
)
def test_hostile_members_stripped_never_leave_the_destination(
    members: list[tuple[str, str, str]], count: int
) -> None:
    """Whatever the names, link targets and strip count, a member the guard lets through lands
    on a clean relative path, a symlink resolves inside from where it lands, no two files
    share a path, and the path the manifest is checked with is the archive's own."""
    guard = MemberGuard(ExtractionLimits(), case_insensitive=False, zip_rules=False,
                        strip_components=count)
    files: set[str] = set()
    for name, kind, target in members:
        member = Member(name, kind, 0, 0o644, 0, target if kind == SYMLINK else None)
        try:
            listed = guard.strip(member) if count else None
            path = guard.check(member)
        except UnsafeMemberError:
            continue
        if count:
            assert listed == normalize_name(name, zip_rules=False)
        if path is None:
            continue
        assert "" not in path.split("/") and ".." not in path.split("/")
        assert os.path.normpath(os.path.join("/dest", path)).startswith("/dest/")
        if kind == SYMLINK:
            landing = os.path.normpath(os.path.join("/dest", os.path.dirname(path), target))
            assert landing == "/dest" or landing.startswith("/dest/")
        if kind == FILE:
            assert path not in files
            files.add(path)
