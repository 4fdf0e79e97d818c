"""Every run's timings say where its time went, whichever path did the work."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager


@pytest.mark.parametrize("parallel", [True, False])
def test_create_and_extract_report_their_phases(
    tmp_path: Path, sample_tree: Path, parallel: bool
) -> None:
    config = ArchiveConfig(enable_parallelization=parallel)
    archive = tmp_path / "out.tar.gz"
    with ArchiveManager(config) as manager:
        created = manager.create_archive(sample_tree, archive)
        # sample_tree holds a file past the small-file limit: its read is hashing time too.
        assert {"collection", "hashing", "compression"} <= created.timings.keys()
        extracted = manager.extract_archive(archive, tmp_path / "dest")
        assert {"decompression", "parsing", "extraction", "commit"} <= extracted.timings.keys()
        phases = manager.get_stats()["phases"]
    assert phases["parsing"]["count"] == 1
    assert phases["hashing"]["total"] > 0


def test_zip_deflate_is_compression_time(tmp_path: Path) -> None:
    """Small zip members are deflated by the reading workers: still compression, not hashing."""
    (tmp_path / "src").mkdir()
    for i in range(300):
        (tmp_path / "src" / f"f{i}.txt").write_text(f"line {i}\n" * 2000)
    with ArchiveManager() as manager:
        created = manager.create_archive(tmp_path / "src", tmp_path / "a.zip")
    assert created.timings.get("compression", 0) > 0


def test_list_counts_files_not_entries(tmp_path: Path, sample_tree: Path) -> None:
    with ArchiveManager() as manager:
        meta = manager.create_archive(sample_tree, tmp_path / "a.tar")
        before = manager.get_stats()["files"]
        entries = manager.list_archive(tmp_path / "a.tar")
        listed = manager.get_stats()["files"] - before
    assert listed == meta.file_count == sum(e.type == "file" for e in entries) < len(entries)
