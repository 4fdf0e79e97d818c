"""ArchiveMetadata.to_dict and json_chunks: the JSON record, independent of the object it came
from, and the same record streamed."""

from __future__ import annotations

import dataclasses
import datetime
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import CompressionFormat
from arcman._metadata import ArchiveMetadata, utc_timestamp
from arcman._names import NameList


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


_names = st.text(st.characters(exclude_categories=["Cs"]) | st.sampled_from("\udcff\\\"\n"))


@settings(max_examples=50, deadline=None)
@given(
    files=st.lists(_names, max_size=20),
    many=st.booleans(),
    timings=st.dictionaries(st.text(max_size=8), st.floats(allow_nan=False), max_size=3),
    skipped=st.lists(_names, max_size=3),
)
def test_json_chunks_are_the_indented_dump(
    files: list[str], many: bool, timings: dict[str, float], skipped: list[str]
) -> None:
    """The .meta sidecar is streamed in pieces; joined, they are json.dumps(indent=2) exactly,
    also when the names span several pieces."""
    names = NameList(files * 500 if many else files)
    meta = ArchiveMetadata(
        "é.tar", CompressionFormat.TAR, "2026-01-01T00:00:00+00:00", len(names), 1, 2, "ab",
        files=names, timings=timings, skipped=skipped,
    )
    assert "".join(meta.json_chunks()) == json.dumps(meta.to_dict(), indent=2)


@given(st.integers(min_value=0, max_value=253402300799))  # to the end of year 9999
def test_utc_timestamp_writes_what_datetime_isoformat_writes(epoch: int) -> None:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    assert utc_timestamp(epoch) == moment.isoformat(timespec="seconds")
