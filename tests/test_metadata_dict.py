"""ArchiveMetadata.to_dict: the JSON record, independent of the object it came from."""

from __future__ import annotations

import dataclasses
import json

from arcman import CompressionFormat
from arcman._metadata import ArchiveMetadata


def test_to_dict_matches_asdict_and_copies_lists() -> None:
    meta = ArchiveMetadata(
        "a.tar.gz", CompressionFormat.TAR_GZ, "2026-01-01T00:00:00+00:00", 2, 10, 5, "ab",
        files=["x", "y/z"], timings={"compression": 0.5}, verification="manifest",
        skipped=["q: gone"],
    )
    expected = dataclasses.asdict(meta)
    expected["format"] = "tar.gz"
    data = meta.to_dict()
    assert data == expected
    data["files"].append("w")
    data["timings"]["hashing"] = 1.0
    assert meta.files == ["x", "y/z"] and meta.timings == {"compression": 0.5}
    assert ArchiveMetadata.from_dict(json.loads(json.dumps(meta.to_dict()))) == meta
