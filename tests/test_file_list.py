"""The create side's file list: compact columns, deterministic order."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import ArchiveManager, _columns
from arcman._create import collect
from arcman._create.entries import EntryTable, SourceEntry
from arcman._manifest import DIR, FILE, SYMLINK
from arcman._names import NameList

_entries = st.builds(
    SourceEntry,
    path=st.text(min_size=1, max_size=20),
    kind=st.sampled_from([FILE, DIR, SYMLINK]),
    # Mostly small values, sometimes one that makes the column widen mid-table.
    size=st.integers(0, 2**32 - 1) | st.integers(0, 2**63 - 1),
    mode=st.integers(0, 0o7777),
    mtime=st.integers(0, 2**32 - 1) | st.integers(-(2**62), 2**62),
    uid=st.integers(0, 2**32 - 1),
    gid=st.integers(0, 3),
    target=st.none() | st.text(min_size=1, max_size=10),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_entries, max_size=30))
def test_table_gives_back_what_was_added(entries: list[SourceEntry]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_columns, "BLOCK", 4)  # several full, compressed blocks
        table = EntryTable()
        for e in entries:
            table.add(e.path, e.kind, e.size, e.mode, e.mtime, e.uid, e.gid, e.target)
        assert list(table) == entries
        assert len(table) == len(entries)
        assert table.names == [e.path for e in entries]
        assert table.total_bytes == sum(e.size for e in entries)


def _tree(root: Path, dirs: int, files: int) -> Path:
    for d in range(dirs):
        sub = root / f"dir{d:03d}"
        sub.mkdir(parents=True)
        for i in range(files):
            (sub / f"file{i:04d}.txt").touch()
    return root


def _collect(root: Path) -> collect.Collection:
    return collect.Collector(
        str(root), exclude_patterns=[], exclude_paths=set(), follow_symlinks=False,
        max_file_size=None, skip_errors=False,
    ).collect()


def test_collection_costs_few_bytes_per_entry(tmp_path: Path) -> None:
    """A list of SourceEntry objects cost ~280 bytes an entry at its peak, 200 kept; the
    table keeps a few bytes an entry (names and fields compressed in blocks), and its peak is a
    directory's scan while it is assembled."""
    root = _tree(tmp_path / "src", 100, 100)
    tracemalloc.start()
    try:
        collection = _collect(root)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count = len(collection.entries)
    assert count == 100 * 101
    assert peak / count < 80
    assert kept / count < 16


def test_create_returns_the_table_names_without_a_copy(tmp_path: Path) -> None:
    root = _tree(tmp_path / "src", 3, 4)
    with ArchiveManager() as manager:
        meta = manager.create_archive(root, tmp_path / "a.tar.gz")
    assert isinstance(meta.files, NameList)
    assert meta.files == [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))]
