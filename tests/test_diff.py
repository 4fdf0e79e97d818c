"""arcman diff: added, removed, changed and mode-only paths, and its exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_tree_just_extracted_has_no_mode_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Extraction drops group/other write and setuid; diff compares what it would give."""
    src = tmp_path / "md"
    src.mkdir()
    (src / "gw").write_text("x")
    (src / "gw").chmod(0o664)
    (src / "s").write_text("y")
    (src / "s").chmod(0o4755)
    (src / "shared").mkdir()
    (src / "shared").chmod(0o1777)
    archive, out = tmp_path / "md.tar", tmp_path / "mdx"
    assert main(["create", str(src), "-o", str(archive), "-q"]) == 0
    assert main(["extract", str(archive), "-C", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["diff", str(archive), str(out)]) == 0
    assert capsys.readouterr().out.strip() == "no differences"
    # The source still holds modes that extracting the archive would change.
    assert main(["diff", str(archive), str(src)]) == 1
    assert capsys.readouterr().out.splitlines() == ["m gw", "m s", "m shared"]


@pytest.mark.needs_zstd
def test_reproducible_compares_only_the_executable_bit(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (sample_tree / "a.txt").chmod(0o664)
    (sample_tree / "sub").chmod(0o750)
    archive = tmp_path / "r.tar.zst"
    assert main(["create", str(sample_tree), "-o", str(archive), "--reproducible", "-q"]) == 0
    capsys.readouterr()
    assert main(["diff", str(archive), str(sample_tree)]) == 1
    assert capsys.readouterr().out.splitlines() == ["m a.txt", "m sub"]
    assert main(["diff", str(archive), str(sample_tree), "--reproducible"]) == 0
    (sample_tree / "run.sh").chmod(0o644)  # no longer executable: a real difference
    assert main(["diff", str(archive), str(sample_tree), "--reproducible"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "m run.sh"


def test_foreign_tar_with_dot_slash_names_compares_by_extracted_paths(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tar cf x.tar -C dir .` stores '.', './a', ...: extraction makes them 'a', so diff does."""
    archive = tmp_path / "plain.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(sample_tree, arcname=".")
    assert main(["diff", str(archive), str(sample_tree)]) == 0
    assert capsys.readouterr().out.strip() == "no differences"
    (sample_tree / "a.txt").unlink()
    assert main(["diff", str(archive), str(sample_tree)]) == 1
    assert capsys.readouterr().out.splitlines() == ["- a.txt"]


@pytest.mark.parametrize("count", [1, 2])
def test_strip_components_counts_a_leading_dot_as_extract_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int
) -> None:
    """`tar -C dir -cf x.tar .` stores './top/app/f': stripped once, extract makes it
    'top/app/f' (as GNU tar does), and diff must compare that path, not 'app/f'."""
    src = tmp_path / "src"
    (src / "top" / "app").mkdir(parents=True)
    (src / "top" / "app" / "f").write_text("x")
    os.link(src / "top" / "app" / "f", src / "top" / "app" / "h")
    archive = tmp_path / "dot.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(src, arcname=".")
    with tarfile.open(archive) as tar:
        assert "./top/app/h" in tar.getnames()
    out = tmp_path / "out"
    assert main(["extract", str(archive), "-C", str(out), "--strip-components", str(count)]) == 0
    capsys.readouterr()
    assert main(["diff", str(archive), str(out), "--strip-components", str(count)]) == 0
    assert capsys.readouterr().out.strip() == "no differences"
    changed = out / ("top/app/h" if count == 1 else "app/h")
    changed.unlink()
    changed.write_text("y")
    assert main(["diff", str(archive), str(out), "--strip-components", str(count)]) == 1
    assert capsys.readouterr().out.strip() == f"M {changed.relative_to(out)}"


def test_foreign_tar_with_hard_links_and_unlisted_parents_compares_as_extracted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hard link is one more name of its target's file, and a parent directory the tar does
    not list is made by extraction: neither is a difference in the tree it extracts to."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a").write_text("x")
    os.link(src / "d" / "a", src / "d" / "b")
    archive = tmp_path / "foreign.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("d/a", "d/b"):  # no member for d itself; d/b is stored as a hard link
            tar.add(src / name, arcname=name)
    with tarfile.open(archive) as tar:
        assert [m.type for m in tar.getmembers()] == [tarfile.REGTYPE, tarfile.LNKTYPE]
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert main(["diff", str(archive), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == "no differences"
    (tmp_path / "out" / "d" / "b").unlink()
    (tmp_path / "out" / "d" / "b").write_text("z")  # no longer the same file's content
    assert main(["diff", str(archive), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().out.strip() == "M d/b"


# Paths of the generated trees, and what is done to a tree after it is archived.
_FILES = ["a", "b", "d/c", "d/e", "f/g/h"]
_PATHS = [*_FILES, "l", "m"]
_DIRS = ["d", "f", "f/g"]
_CHANGES = st.tuples(
    st.sampled_from(["write", "flip", "chmod", "remove", "symlink", "mkdir"]),
    st.sampled_from([*_PATHS, *_DIRS, "l", "m"]),  # the links twice as likely
    st.binary(max_size=8),
    st.sampled_from([0o644, 0o600, 0o664, 0o755, 0o4755, 0o700, 0o2775]),
)


def _change(root: Path, change: tuple[str, str, bytes, int]) -> None:
    """One change, where it can be made (writing below a file cannot, and is left out);
    "flip" rewrites a file's bytes at the same size, which only its SHA-256 tells."""
    action, name, data, mode = change
    path = root / name
    targets = ["a", "b", "d"]
    if path.is_symlink():  # pointed elsewhere: a change only the link target tells
        targets.remove(os.readlink(path))
    try:
        if action in ("remove", "symlink") or (action == "mkdir" and not path.is_dir()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.is_symlink() or path.exists():
                path.unlink()
        if action == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        elif action == "flip" and path.is_file() and not path.is_symlink():  # same size
            path.write_bytes(bytes(byte ^ 0xFF for byte in path.read_bytes()))
        elif action == "chmod" and not path.is_symlink():
            path.chmod(mode | 0o700 if path.is_dir() else mode)  # a directory stays walkable
        elif action == "symlink":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(targets[len(data) % len(targets)])  # dangling or not
        elif action == "mkdir":
            path.mkdir(parents=True, exist_ok=True)
    except OSError:  # below a file, through a link to itself, ...
        pass


def _snapshot(root: Path) -> dict[str, tuple[str, int, str, str, int]]:
    """path -> (kind, size, SHA-256, link target, permission bits), as the file system has it."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            rel = path.relative_to(root).as_posix()
            st_ = path.lstat()
            if path.is_symlink():
                found[rel] = ("symlink", 0, "", os.readlink(path), 0)
            elif path.is_dir():
                found[rel] = ("dir", 0, "", "", st_.st_mode & 0o7777)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = ("file", st_.st_size, digest, "", st_.st_mode & 0o7777)
    return found


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(_FILES), st.tuples(st.binary(max_size=8),
                    st.sampled_from([0o644, 0o755, 0o664, 0o600])), min_size=1),
    st.dictionaries(st.sampled_from(["l", "m"]), st.sampled_from(["a", "b", "d"])),
    st.lists(_CHANGES, max_size=5),
)
def test_diff_reports_what_changed_in_the_tree(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, tuple[bytes, int]],
    links: dict[str, str],
    changes: list[tuple[str, str, bytes, int]],
) -> None:
    """Against an oracle that compares the tree's two states itself: the archive's modes as
    extraction sets them (no setuid, setgid, sticky, group or other write; the owner's rw, and
    x for a directory), the tree's as they are."""
    work = tmp_path_factory.mktemp("diff")
    root = work / "tree"
    for name, (data, mode) in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        (root / name).chmod(mode)
    for name, target in links.items():
        (root / name).symlink_to(target)
    before = _snapshot(root)
    with ArchiveManager() as manager:
        manager.create_archive(root, work / "a.tar.gz")
    for change in changes:
        _change(root, change)
    after = _snapshot(root)
    common = before.keys() & after.keys()

    def extracted(kind: str, mode: int) -> int:
        return (mode & 0o755) | (0o700 if kind == "dir" else 0o600)

    capsys.readouterr()
    code = main(["diff", str(work / "a.tar.gz"), str(root), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == (0 if result["same"] else 1)
    assert sorted(result["added"]) == sorted(after.keys() - before.keys())
    assert sorted(result["removed"]) == sorted(before.keys() - after.keys())
    changed = {p for p in common if before[p][:4] != after[p][:4]}
    assert sorted(result["changed"]) == sorted(changed)
    assert sorted(result["mode_only"]) == sorted(
        p for p in common - changed
        if before[p][0] != "symlink" and extracted(before[p][0], before[p][4]) != after[p][4]
    )
