"""Collection: what a source tree turns into (order, excludes, links, special files)."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager, SourceError
from arcman._create.collect import Collector
from arcman._diff import diff_tree
from arcman._extract.safety import MAX_LINK_CHAIN

MANIFEST = ".arcman-manifest.jsonl"


def _files(tmp_path: Path, source: Path, config: ArchiveConfig) -> list[str]:
    with ArchiveManager(config) as manager:
        return manager.create_archive(source, tmp_path / "a.tar", config).files


def test_sorted_order_with_parents_first(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for rel in ["b/z", "b/a", "a", "c/d/e"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    files = _files(tmp_path, root, ArchiveConfig())
    assert files == ["a", "b", "b/a", "b/z", "c", "c/d", "c/d/e"]


def test_gitignore_style_excludes(tmp_path: Path) -> None:
    root = tmp_path / "src"
    for rel in ["keep.py", "x.pyc", "sub/y.pyc", "build/out", "sub/build/out", "docs/build"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    files = _files(tmp_path, root, ArchiveConfig(exclude_patterns=["*.pyc", "/build/"]))
    assert files == ["docs", "docs/build", "keep.py", "sub", "sub/build", "sub/build/out"]


def test_special_file_is_an_error_or_a_reported_skip(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "f").write_text("x")
    os.mkfifo(root / "pipe")
    with pytest.raises(SourceError, match="pipe"):
        _files(tmp_path, root, ArchiveConfig())
    assert not (tmp_path / "a.tar").exists()
    with ArchiveManager() as manager:
        meta = manager.create_archive(root, tmp_path / "a.tar", ArchiveConfig(on_error="skip"))
    assert meta.files == ["f"] and meta.skipped[0].startswith("pipe")


def test_follow_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("data")
    (root / "lf").symlink_to("d/f")
    (root / "ld").symlink_to("d")
    with ArchiveManager() as manager:
        manager.create_archive(root, tmp_path / "a.tar", ArchiveConfig(follow_symlinks=True))
        manager.extract_archive(tmp_path / "a.tar", tmp_path / "out")
    out = tmp_path / "out"
    assert not (out / "lf").is_symlink() and (out / "lf").read_text() == "data"
    assert not (out / "ld").is_symlink() and (out / "ld" / "f").read_text() == "data"


def test_symlink_loop_with_follow_symlinks_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "d" / "up").symlink_to("..")
    with pytest.raises(SourceError, match="loop"):
        _files(tmp_path, root, ArchiveConfig(follow_symlinks=True))


def test_archive_inside_its_own_source_is_left_out(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "f").write_text("x")
    with ArchiveManager() as manager:
        first = manager.create_archive(root, root / "self.tar.gz")
        second = manager.create_archive(root, root / "self.tar.gz")
    assert first.files == second.files == ["f"]


def test_output_reached_through_a_followed_symlink_is_left_out(tmp_path: Path) -> None:
    """A link to the output's directory reaches the archive's temporary, the previous archive
    and its sidecars under other paths: they are still left out (by identity). A hard link to
    the previous archive is a file of the tree: it stays."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    (src / "f").write_text("x")
    (out / "other").write_text("kept")
    (src / "link").symlink_to("../out")
    with ArchiveManager(ArchiveConfig(follow_symlinks=True)) as manager:
        first = manager.create_archive(src, out / "a.tar.gz")
        os.link(out / "a.tar.gz", src / "copy.tar.gz")
        second = manager.create_archive(src, out / "a.tar.gz")  # over the first, its sidecars
    assert list(first.files) == ["f", "link", "link/other"]
    assert list(second.files) == ["copy.tar.gz", "f", "link", "link/other"]


def test_backslash_names_are_refused_or_skipped_for_zip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a\\b").write_text("x")
    (src / "ok").write_text("y")
    with ArchiveManager() as manager, pytest.raises(SourceError, match="backslash"):
        manager.create_archive(src, tmp_path / "o.zip")
    assert not (tmp_path / "o.zip").exists()
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(src, tmp_path / "o.zip")
        assert meta.files == ["ok"]
        assert meta.skipped and "backslash" in meta.skipped[0]
        # tar keeps the name as it is
        assert "a\\b" in manager.create_archive(src, tmp_path / "o.tar").files


@pytest.mark.parametrize("ext", [".tar.gz", ".zip"])
def test_a_tree_unpacked_by_another_tool_keeps_its_manifest_out(tmp_path: Path, ext: str) -> None:
    """tar and unzip extract the manifest too: archiving that tree again must not store it
    ahead of the manifest the writer adds (verify and extract would reject the archive)."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("x")
    (src / "sub" / MANIFEST).write_text("deeper: an ordinary file")
    unpacked = tmp_path / "unpacked"
    with ArchiveManager() as manager:
        manager.create_archive(src, tmp_path / f"first{ext}")
    if ext == ".zip":
        with zipfile.ZipFile(tmp_path / f"first{ext}") as z:
            z.extractall(unpacked)
    else:
        with tarfile.open(tmp_path / f"first{ext}") as t:
            t.extractall(unpacked, filter="data")
    assert (unpacked / MANIFEST).is_file()
    again = tmp_path / f"again{ext}"
    with ArchiveManager() as manager, pytest.raises(SourceError, match="manifest") as info:
        manager.create_archive(unpacked, again)
    assert info.value.path == MANIFEST and not again.exists()
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(unpacked, again)
        assert manager.verify_archive_integrity(again)
        assert [s.split(":")[0] for s in meta.skipped] == [MANIFEST]
        assert list(meta.files) == ["f", "sub", f"sub/{MANIFEST}"]


def test_a_directory_named_like_the_manifest_is_refused_with_its_contents(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / MANIFEST).mkdir(parents=True)
    (src / MANIFEST / "x").write_text("x")
    (src / "f").write_text("y")
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(src, tmp_path / "a.tar")
        assert manager.verify_archive_integrity(tmp_path / "a.tar")
    assert [s.split(":")[0] for s in meta.skipped] == [MANIFEST, f"{MANIFEST}/x"]
    assert list(meta.files) == ["f"]


def test_non_utf8_names_are_refused_or_skipped_for_zip(tmp_path: Path) -> None:
    """A zip name has no raw-bytes form that readers decode; tar keeps the bytes."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkdir(os.path.join(os.fsencode(src), b"d\xff"))
    for name in (b"bad\xff", b"d\xff/x"):
        with open(os.path.join(os.fsencode(src), name), "wb") as f:
            f.write(b"x")
    (src / "ok").write_text("y")
    bad = os.fsdecode(b"bad\xff")
    with ArchiveManager() as manager, pytest.raises(SourceError, match="UTF-8") as info:
        manager.create_archive(src, tmp_path / "o.zip")
    assert info.value.path == bad and not (tmp_path / "o.zip").exists()
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(src, tmp_path / "o.zip")
        assert manager.verify_archive_integrity(tmp_path / "o.zip")
        assert list(meta.files) == ["ok"]
        assert len(meta.skipped) == 3 and all("UTF-8" in s for s in meta.skipped)
        tar = manager.create_archive(src, tmp_path / "o.tar")
        assert manager.verify_archive_integrity(tmp_path / "o.tar")
        assert bad in tar.files and os.fsdecode(b"d\xff/x") in tar.files


@pytest.mark.parametrize("patterns", [[".DS_Store", "Thumbs.db"], ["build"], []])
def test_plain_names_match_as_excludes_do(tmp_path: Path, patterns: list[str]) -> None:
    """Plain-name patterns skip Excludes (pathspec); the result is what it gives for them."""
    from arcman._create.collect import Collector

    for rel in [".DS_Store", "a/.DS_Store", "a/b/Thumbs.db/x", "build/out", "a/build",
                "a/builds", "a/x.DS_Store", "keep/file"]:
        path = tmp_path / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)

    def names(extra: list[str]) -> list[str]:
        collector = Collector(
            str(tmp_path / "src"), exclude_patterns=patterns + extra, exclude_paths=set(),
            follow_symlinks=False, max_file_size=None, skip_errors=False,
        )
        assert (collector._excludes is None) == (not extra)
        return list(collector.collect().entries.names)

    # A glob that matches nothing forces the Excludes path for the same patterns.
    assert names([]) == names(["*.never-matches"])


def test_a_huge_directory_costs_no_more_than_the_same_files_spread_out(tmp_path: Path) -> None:
    """Memory must not grow with one directory's size: its entries are looked at one at a
    time as the walk reaches them (with a stat kept for each, 200,000 files took 250 MB)."""
    import tracemalloc

    flat, spread = tmp_path / "flat", tmp_path / "spread"
    flat.mkdir()
    for i in range(10_000):
        (flat / f"file-{i:05d}").touch()
        sub = spread / f"d{i // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file-{i:05d}").touch()
    peaks = {}
    for root in (flat, spread):
        collector = Collector(str(root), exclude_patterns=[], exclude_paths=set(),
                              follow_symlinks=False, max_file_size=None, skip_errors=False)
        tracemalloc.start()
        try:
            for _ in collector.walk():
                pass
            peaks[root.name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["flat"] < peaks["spread"] + 2 * 1024 * 1024, peaks


@pytest.mark.parametrize("target", ["/usr/bin/python3", "../outside", "d/../../x"])
def test_a_symlink_extraction_refuses_is_refused_or_skipped(tmp_path: Path, target: str) -> None:
    """Create wrote it and exited 0; the archive then failed its own verify and extract."""
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "keep").write_text("k")
    (root / "d" / "ok").symlink_to("../keep")
    (root / "link").symlink_to(target)
    with ArchiveManager() as manager:
        with pytest.raises(SourceError, match="extraction refuses it"):
            manager.create_archive(root, tmp_path / "a.tar")
        assert not (tmp_path / "a.tar").exists()
        meta = manager.create_archive(root, tmp_path / "a.tar", ArchiveConfig(on_error="skip"))
        assert [s.split(":")[0] for s in meta.skipped] == ["link"]
        assert manager.verify_archive_integrity(tmp_path / "a.tar")
        # Followed, the link is its target's content: nothing to refuse when it is inside.
        if target == "../outside":
            (tmp_path / "outside").write_text("o")
            manager.create_archive(root, tmp_path / "b.tar", ArchiveConfig(follow_symlinks=True))


@pytest.mark.parametrize("skip", [False, True], ids=["fail", "skip"])
def test_a_symlink_chain_that_leads_out_of_the_tree_is_refused(
    tmp_path: Path, skip: bool
) -> None:
    """``b -> a/..`` looks inside, but with ``a -> .`` it is the tree's parent: verify and
    extract refuse it, so create must not write it and exit 0. Known only once every link is
    seen, after the link may have been written: an error even when skipping is asked."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "f").write_text("f")
    (root / "a").symlink_to(".")
    (root / "b").symlink_to("a/..")
    (root / "c").symlink_to("a/f")  # a chain that stays inside is fine
    config = ArchiveConfig(on_error="skip" if skip else "fail")
    with pytest.raises(SourceError, match=r"'b': symlink to 'a/\.\.' resolves outside"), \
            ArchiveManager() as manager:
        manager.create_archive(root, tmp_path / "a.tar", config)
    assert sorted(os.listdir(tmp_path)) == ["src"]
    (root / "b").unlink()
    with ArchiveManager() as manager:
        manager.create_archive(root, tmp_path / "a.tar", config)
        assert manager.verify_archive_integrity(tmp_path / "a.tar")


@pytest.mark.parametrize("length", [MAX_LINK_CHAIN, MAX_LINK_CHAIN + 1])
def test_a_symlink_chain_longer_than_a_kernel_resolves_is_refused(
    tmp_path: Path, length: int
) -> None:
    """Extraction refuses a chain of more links than a lookup follows: create does too."""
    root = tmp_path / "src"
    root.mkdir()
    (root / f"l{length}").write_text("f")
    for i in range(length):
        (root / f"l{i}").symlink_to(f"l{i + 1}")
    with ArchiveManager() as manager:
        if length > MAX_LINK_CHAIN:
            with pytest.raises(SourceError, match=f"'l0': a chain of more than {MAX_LINK_CHAIN}"):
                manager.create_archive(root, tmp_path / "a.tar")
            assert sorted(os.listdir(tmp_path)) == ["src"]
        else:
            manager.create_archive(root, tmp_path / "a.tar")
            manager.extract_archive(tmp_path / "a.tar", tmp_path / "dest")
            assert (tmp_path / "dest" / "l0").read_text() == "f"


def test_diff_takes_the_tree_as_it_is(tmp_path: Path) -> None:
    """The links create refuses are a difference for diff, not an error."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "f").write_text("f")
    with ArchiveManager() as manager:
        entries = manager.list_archive(
            manager.create_archive(root, tmp_path / "a.tar").filename
        )
    (root / "abs").symlink_to("/usr/bin/python3")
    (root / "a").symlink_to(".")
    (root / "b").symlink_to("a/..")
    assert sorted(diff_tree(entries, str(root), ArchiveConfig()).added) == ["a", "abs", "b"]


@pytest.mark.parametrize("follow", [False, True], ids=["links-kept", "links-followed"])
def test_a_directory_swapped_for_a_link_out_of_the_tree_is_not_walked(
    tmp_path: Path, follow: bool
) -> None:
    """The walk stats a directory when its parent is listed and lists it later: swapped for a
    symlink in between (RENAME_EXCHANGE in a loop did it within two runs), the walk listed
    the link's target and archived files from outside the tree."""
    root = tmp_path / "src"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f1").write_text("f")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "s.txt").write_text("TOPSECRET")
    collector = Collector(str(root), exclude_patterns=[], exclude_paths=set(),
                          follow_symlinks=follow, max_file_size=None, skip_errors=False)
    seen = []
    walk = collector.walk()
    with pytest.raises(SourceError) as caught:
        for entry in walk:
            seen.append(entry.path)
            if entry.path == "a":  # stat'ed as a directory; listed when the walk goes on
                (root / "a").rename(tmp_path / "a.real")
                (root / "a").symlink_to(tmp_path / "secret")
    assert seen == ["a"] and "'a'" in str(caught.value)


def test_a_tree_deeper_than_the_open_file_limit_is_archived(tmp_path: Path) -> None:
    """The walk held a descriptor for each level: 100 levels under a limit of 64 (macOS
    allows 256 by default) failed "Too many open files"."""
    import subprocess
    import sys

    deep = tmp_path / "src" / "/".join(["d"] * 100)
    deep.mkdir(parents=True)
    (deep / "f").write_text("bottom")
    out = tmp_path / "a.tar.gz"
    program = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit("
        "resource.RLIMIT_NOFILE)[1]))\n"
        "from arcman._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, "create", str(tmp_path / "src"), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names[-2:] == ["/".join(["d"] * 100 + ["f"]), MANIFEST]
    assert len(names) == 102


def _collector(root: Path, *, skip: bool) -> Collector:
    return Collector(str(root), exclude_patterns=[], exclude_paths=set(), follow_symlinks=False,
                     max_file_size=None, skip_errors=skip)


@pytest.mark.parametrize("skip", [False, True])
def test_a_directory_replaced_while_its_subtree_is_walked_is_an_error(
    tmp_path: Path, skip: bool
) -> None:
    """The walk opens a directory again after each subdirectory's tree: it must still be the
    directory its parent listed, or what follows would come from another one."""
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("f")
    (root / "a" / "c").write_text("old c")
    collector = _collector(root, skip=skip)
    walk = collector.walk()
    assert [next(walk).path for _ in range(3)] == ["a", "a/b", "a/b/f"]
    (root / "a").rename(tmp_path / "moved")
    (root / "a").mkdir()
    (root / "a" / "c").write_text("new c")
    if not skip:
        with pytest.raises(SourceError, match="'a': changed while the archive was being made"):
            next(walk)
        return
    assert list(walk) == []
    assert collector.skipped == [("a", "changed while the archive was being made")]
