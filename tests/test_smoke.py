"""End-to-end round trips through every format with the public API."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager, CompressionFormat

FORMATS = [fmt.extensions[0] for fmt in CompressionFormat]


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(same_tree(a / d, b / d) for d in cmp.common_dirs)


@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip(tmp_path: Path, sample_tree: Path, ext: str) -> None:
    archive = tmp_path / f"out{ext}"
    with ArchiveManager() as manager:
        meta = manager.create_archive(sample_tree, archive)
        assert meta.file_count == 4
        assert manager.verify_archive_integrity(archive)
        result = manager.extract_archive(archive, tmp_path / "dest")
    assert result.verification == "manifest"
    assert same_tree(sample_tree, tmp_path / "dest")
    assert (tmp_path / "dest" / "link").readlink() == Path("a.txt")
    assert (tmp_path / "dest" / "run.sh").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("ext", FORMATS)
def test_same_bytes_whatever_the_thread_count(tmp_path: Path, sample_tree: Path, ext: str) -> None:
    outputs = []
    for i, config in enumerate(
        [
            ArchiveConfig(enable_parallelization=False),
            ArchiveConfig(thread_pool_size=1),
            ArchiveConfig(thread_pool_size=2),
            ArchiveConfig(thread_pool_size=4),
        ]
    ):
        archive = tmp_path / f"out{i}{ext}"
        with ArchiveManager(config) as manager:
            manager.create_archive(sample_tree, archive)
        outputs.append(archive.read_bytes())
    assert all(o == outputs[0] for o in outputs)
