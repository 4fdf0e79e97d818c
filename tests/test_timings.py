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
