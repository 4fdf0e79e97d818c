"""Hard links: a file with several names in the tree is stored once in a tar, its other names
as link members, and extracted as links again; copies in a zip or with hard_links=False."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, IntegrityError, SourceError
from arcman._cli import main
from arcman._create import files
from helpers import FORMATS, MANIFEST, TAR_FORMATS, tool

CONFIGS = [
    ArchiveConfig(enable_parallelization=False),
    ArchiveConfig(thread_pool_size=2),
    ArchiveConfig(thread_pool_size=4),
]
_DIRS = ["", "a/", "a/b/", "c/"]


def _names(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``root`` (the manifest left out): its content and its inode."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if rel != MANIFEST:
                found[rel] = (Path(path).read_bytes(), os.lstat(path).st_ino)
    return found


def _groups(names: dict[str, tuple[bytes, int]]) -> set[frozenset[str]]:
    """The names, grouped by the inode they share."""
    by_inode: dict[int, set[str]] = {}
    for name, (_, inode) in names.items():
        by_inode.setdefault(inode, set()).add(name)
    return {frozenset(group) for group in by_inode.values()}


def _contents(names: dict[str, tuple[bytes, int]]) -> dict[str, bytes]:
    return {name: data for name, (data, _) in names.items()}


def _linked_tree(root: Path, files: list[tuple[bytes, list[str]]]) -> None:
    """Each file under its first name, and its other names made as hard links to it."""
    for data, names in files:
        first = root / names[0]
        first.parent.mkdir(parents=True, exist_ok=True)
        first.write_bytes(data)
        for name in names[1:]:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            os.link(first, root / name)


@st.composite
def _linked_files(draw: st.DrawFn) -> list[tuple[bytes, list[str]]]:
    """Files of 0-3 extra names each, spread over a few directories; no name used twice."""
    files = []
    used: set[str] = set()
    for i in range(draw(st.integers(1, 5))):
        names = []
        for j in range(draw(st.integers(1, 4))):
            name = f"{draw(st.sampled_from(_DIRS))}f{i}-{j}"
            if name not in used:
                used.add(name)
                names.append(name)
        data = draw(st.binary(max_size=300) | st.sampled_from([b"", b"x" * 70_000]))
        files.append((data, names))
    return files


@pytest.mark.parametrize("ext", FORMATS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=_linked_files())
def test_generated_links_round_trip(ext: str, files: list[tuple[bytes, list[str]]]) -> None:
    """A tar keeps which names are one file, a zip makes copies; the contents are the same
    and every config writes the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        _linked_tree(base / "src", files)
        source = _names(base / "src")
        archives = []
        for i, config in enumerate(CONFIGS):
            archive = base / f"a{i}{ext}"
            with ArchiveManager(config) as manager:
                manager.create_archive(base / "src", archive)
                result = manager.extract_archive(archive, base / f"out{i}")
                assert manager.verify_archive_integrity(archive)
            assert result.verification == "manifest"
            extracted = _names(base / f"out{i}")
            assert _contents(extracted) == _contents(source)
            if ext == ".zip":
                assert all(len(group) == 1 for group in _groups(extracted))
            else:
                assert _groups(extracted) == _groups(source)
            archives.append(archive.read_bytes())
        assert all(a == archives[0] for a in archives[1:])


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def _member_text(archive: Path, name: str) -> str:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


@pytest.fixture
def linked(tmp_path: Path) -> Path:
    """``big`` (70 KB) also named ``d/again`` and ``zz``; ``solo`` with one name."""
    root = tmp_path / "src"
    _linked_tree(root, [(os.urandom(70_000), ["big", "d/again", "zz"]), (b"one\n", ["solo"])])
    return root


def test_the_content_is_stored_once(tmp_path: Path, linked: Path) -> None:
    archive = tmp_path / "a.tar"
    with ArchiveManager() as manager:
        meta = manager.create_archive(linked, archive)
    members = _members(archive)
    assert members["big"].isfile() and members["big"].size == 70_000
    for name in ("d/again", "zz"):
        assert members[name].islnk() and members[name].linkname == "big"
        assert members[name].mode == members["big"].mode
    assert meta.file_count == 2 and meta.uncompressed_size == 70_004
    assert archive.stat().st_size < 2 * 70_000
    manifest = [json.loads(line) for line in _member_text(archive, MANIFEST).splitlines()]
    assert {"path": "zz", "type": "hardlink", "target": "big"}.items() <= manifest[-2].items()


@pytest.mark.parametrize("how", ["api", "cli"])
def test_hard_dereference_stores_copies(tmp_path: Path, linked: Path, how: str) -> None:
    archive = tmp_path / "a.tar.gz"
    if how == "api":
        with ArchiveManager(ArchiveConfig(hard_links=False)) as manager:
            manager.create_archive(linked, archive)
    else:
        assert main(["create", str(linked), "-o", str(archive), "-q", "--hard-dereference"]) == 0
    members = _members(archive)
    assert all(members[n].isfile() and members[n].size == 70_000 for n in ("big", "d/again", "zz"))
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert all(len(group) == 1 for group in _groups(_names(tmp_path / "out")))


def test_a_dry_run_lists_links_as_such(
    linked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", str(linked), "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    included = {e["path"]: e for e in plan["included"]}
    assert included["zz"] == {"path": "zz", "type": "hardlink", "size": 0, "target": "big"}
    assert "target" not in included["big"]
    assert plan["total_bytes"] == 70_004
    assert main(["create", str(linked), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "+ zz  (hard link to big)" in lines and "+ big" in lines
    assert lines[-1] == "would archive 2 files (68.4 KiB), leave out 0"


def test_a_file_whose_other_names_are_outside_the_tree_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"data")
    os.link(tmp_path / "src" / "f", tmp_path / "elsewhere")
    with ArchiveManager() as manager:
        manager.create_archive(tmp_path / "src", tmp_path / "a.tar")
    assert _members(tmp_path / "a.tar")["f"].isfile()


def test_an_excluded_first_name_leaves_the_next_one_the_file(
    tmp_path: Path, linked: Path
) -> None:
    with ArchiveManager(ArchiveConfig(exclude_patterns=["/big"])) as manager:
        manager.create_archive(linked, tmp_path / "a.tar")
        manager.extract_archive(tmp_path / "a.tar", tmp_path / "out")
    members = _members(tmp_path / "a.tar")
    assert "big" not in members and members["d/again"].isfile()
    assert members["zz"].islnk() and members["zz"].linkname == "d/again"
    assert frozenset({"d/again", "zz"}) in _groups(_names(tmp_path / "out"))


def test_links_to_a_skipped_file_are_skipped_and_reported(
    tmp_path: Path, linked: Path, unreadable: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The link would name no member (extraction refuses such a link): it goes too, said so."""
    unreadable(linked / "big")
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(linked, archive)
        assert manager.verify_archive_integrity(archive)
        manager.extract_archive(archive, tmp_path / "out")
    assert [s.split(":")[0] for s in meta.skipped] == ["big", "d/again", "zz"]
    assert "zz: hard link to big, which was skipped" in meta.skipped
    assert "skipped zz: hard link to big" in caplog.text
    assert set(meta.files) == {"d", "solo"}
    assert set(_names(tmp_path / "out")) == {"solo"}


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize(
    ("change", "said"),
    [("replaced", "changed while the archive was being made"), ("removed", "No such file")],
)
def test_a_link_changed_after_its_file_was_read_fails_or_is_skipped(
    tmp_path: Path, linked: Path, monkeypatch: pytest.MonkeyPatch,
    after_collection: Callable[[Callable[[], None]], None], change: str, said: str, skip: bool,
) -> None:
    """Once ``big`` is read and checked, its link ``zz`` is replaced or removed: the link's
    own check must tell, or another file would be archived as one more name of ``big``."""
    after_collection(lambda: None)  # the whole tree is walked before ``big`` is read
    real = files.check_unchanged

    def then_change(fd: int, size: int, stamp: int, path: str) -> None:
        real(fd, size, stamp, path)
        if path.endswith("/big"):
            (linked / "zz").unlink()
            if change == "replaced":
                (linked / "zz").write_bytes(b"another file")

    monkeypatch.setattr(files, "check_unchanged", then_change)
    archive = tmp_path / "a.tar"
    if not skip:
        with ArchiveManager() as manager, pytest.raises(SourceError, match=said) as failed:
            manager.create_archive(linked, archive)
        assert failed.value.path is not None and failed.value.path.endswith("/zz")
        assert not archive.exists()
        return
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(linked, archive)
        manager.extract_archive(archive, tmp_path / "out")
    assert len(meta.skipped) == 1 and meta.skipped[0].startswith("zz: ") and said in meta.skipped[0]
    assert _groups(_names(tmp_path / "out")) == {frozenset({"big", "d/again"}), frozenset({"solo"})}


def test_links_of_a_file_over_the_size_limit_are_skipped_too(
    tmp_path: Path, linked: Path
) -> None:
    with ArchiveManager(ArchiveConfig(on_error="skip", max_file_size=1000)) as manager:
        meta = manager.create_archive(linked, tmp_path / "a.tar")
    assert sorted(s.split(":")[0] for s in meta.skipped) == ["big", "d/again", "zz"]


def test_a_link_that_names_another_file_than_its_manifest_fails(
    tmp_path: Path, linked: Path
) -> None:
    """The manifest's target is checked: a link rewritten to name another file is refused."""
    archive = tmp_path / "a.tar"
    with ArchiveManager() as manager:
        manager.create_archive(linked, archive)
    forged = tmp_path / "forged.tar"
    with tarfile.open(archive) as tar, tarfile.open(forged, "w", format=tarfile.PAX_FORMAT) as out:
        for member in tar.getmembers():
            if member.name == "zz":
                member.linkname = "solo"
            out.addfile(member, tar.extractfile(member) if member.isfile() else None)
    with ArchiveManager() as manager, pytest.raises(IntegrityError, match="'zz' points elsewhere"):
        manager.verify_archive_integrity(forged)


def test_strip_components_keeps_links_and_their_check(tmp_path: Path, linked: Path) -> None:
    """The manifest names links by their archived targets: a stripped target must still
    match it."""
    top = tmp_path / "wrap"
    top.mkdir()
    linked.rename(top / "app")
    with ArchiveManager() as manager:
        manager.create_archive(top, tmp_path / "a.tar.gz")
        result = manager.extract_archive(
            tmp_path / "a.tar.gz", tmp_path / "out", strip_components=1
        )
    assert result.verification == "manifest"
    assert frozenset({"big", "d/again", "zz"}) in _groups(_names(tmp_path / "out"))


def test_a_reproducible_link_has_its_file_mode(tmp_path: Path, linked: Path) -> None:
    (linked / "big").chmod(0o700)
    with ArchiveManager(ArchiveConfig(reproducible=True)) as manager:
        manager.create_archive(linked, tmp_path / "a.tar")
    members = _members(tmp_path / "a.tar")
    assert members["zz"].islnk() and members["zz"].mode == members["big"].mode == 0o755


@pytest.mark.parametrize("program", ["tar", "bsdtar"])
@pytest.mark.parametrize("ext", TAR_FORMATS[:2])
def test_other_tools_extract_the_links(
    tmp_path: Path, linked: Path, program: str, ext: str
) -> None:
    if tool(program) is None:
        pytest.skip(f"{program} is not installed")
    archive = tmp_path / f"a{ext}"
    with ArchiveManager() as manager:
        manager.create_archive(linked, archive)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([program, "-xf", str(archive), "-C", str(out)], check=True)
    assert _groups(_names(out)) == _groups(_names(linked))


def test_a_long_listing_says_what_links_point_to(
    tmp_path: Path, linked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (linked / "soft").symlink_to("solo")
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(linked), "-o", str(archive), "-q"]) == 0
    capsys.readouterr()
    assert main(["list", "-l", str(archive)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("hardlink 0") and lines[-1].endswith(" zz link to big")
    assert any(line.startswith("symlink  0777") and line.endswith(" soft -> solo")
               for line in lines)
