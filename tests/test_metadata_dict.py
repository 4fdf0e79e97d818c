"""ArchiveMetadata.to_dict and json_chunks: the JSON record, independent of the object it came
from, and the same record streamed."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import CompressionFormat, _columns, _metadata
from arcman._metadata import ArchiveEntry, ArchiveMetadata, EntryList, json_pieces, utc_timestamp
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


_entries = st.builds(
    ArchiveEntry,
    name=_names,
    type=st.sampled_from(["file", "dir", "symlink", "hardlink", "special"]),
    size=st.integers(0, 2**63 - 1),
    mode=st.integers(0, 0o7777777),
    mtime=st.integers(-(2**63), 2**63 - 1),
    sha256=st.none() | st.binary(min_size=32, max_size=32).map(bytes.hex),
    target=st.none() | _names,
)


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(_entries, max_size=20), index=st.integers(-25, 25))
def test_entry_list_gives_back_what_was_added(entries: list[ArchiveEntry], index: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_columns, "BLOCK", 4)  # several full, compressed blocks
        listed = EntryList(entries)
        assert list(listed) == entries and listed == entries and len(listed) == len(entries)
        assert listed[1:-1:2] == entries[1:-1:2]
        if -len(entries) <= index < len(entries):
            assert listed[index] == entries[index]
        else:
            with pytest.raises(IndexError):
                listed[index]


@settings(max_examples=50, deadline=None)
@given(
    names=st.lists(_names, max_size=30),
    entries=st.lists(_entries, max_size=30),
    other=st.dictionaries(st.text(max_size=5), st.integers() | st.lists(st.text(), max_size=3)),
    indent=st.none() | st.integers(0, 4),
)
def test_json_pieces_are_json_dumps(
    names: list[str], entries: list[ArchiveEntry], other: dict[str, object], indent: int | None
) -> None:
    """The CLI's --json and the .meta sidecar stream their long sequences (NameList,
    EntryList) in pieces of a few items here; joined, they are json.dumps of the record."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_metadata, "_ITEMS_PER_PIECE", 3)
        record = {**other, "names": NameList(names), "entries": EntryList(entries)}
        plain = {**other, "names": names, "entries": [e.to_dict() for e in entries]}
        assert "".join(json_pieces(record, indent=indent)) == json.dumps(plain, indent=indent)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.pop("format"), "lacks ['format']"),
        (lambda d: d.pop("checksum_sha256"), "lacks ['checksum_sha256']"),
        (lambda d: d.update(format="rar"), "'format'"),
        (lambda d: d.update(files=None), "'files'"),
        (lambda d: d.update(files=[1]), "'files'"),
        (lambda d: d.update(file_count="3"), "'file_count'"),
        (lambda d: d.update(file_count=True), "'file_count'"),
        (lambda d: d.update(timings={"x": "1"}), "'timings'"),
        (lambda d: d.update(extra=1), "unknown ArchiveMetadata fields: ['extra']"),
    ],
)
def test_from_dict_names_what_is_wrong(change: Any, words: str) -> None:
    """A .meta sidecar is input: what is missing or of the wrong type is a ValueError naming
    the field (it was a KeyError, a TypeError, or an object whose to_dict() then failed)."""
    data = ArchiveMetadata(
        "a.tar.gz", CompressionFormat.TAR_GZ, "2026-01-01T00:00:00+00:00", 2, 10, 5, "ab",
        files=["x"],
    ).to_dict()
    change(data)
    with pytest.raises(ValueError, match=re.escape(words)):
        ArchiveMetadata.from_dict(data)
    with pytest.raises(ValueError, match="mapping"):
        ArchiveMetadata.from_dict([])  # type: ignore[arg-type]
