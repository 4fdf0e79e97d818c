"""Memory per member on extract and verify: what grows with the member count must be compact.

The stress test (test_load.py) measures peak RSS on a million files; this fast guard measures
Python allocations (tracemalloc) on two archives of empty files and checks the growth per
member, so fixed costs (buffers, threads, the in-flight window) cancel out.
"""

from __future__ import annotations

import contextlib
import os
import tracemalloc
from pathlib import Path

import pytest

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    ExtractionLimits,
    _manifest,
    _metadata,
)
from arcman._cli import main
from arcman._extract import check, decompress, extract
from arcman._extract.source import ArchiveSource

SMALL, LARGE = 1_000, 6_000
# Measured: ~125 bytes a member (the result's NameList, the guard's NameSet); the code before
# spooling used ~1,090 (member objects, the manifest bytes and entries, sets of paths). `list`
# used ~530 with a list of ArchiveEntry objects, and its command line twice that or more.
MAX_BYTES_PER_MEMBER = 256


def _archive(root: Path, count: int) -> Path:
    archive = root / f"a{count}.tar"
    if archive.exists():
        return archive
    src = root / f"src{count}"
    for i in range(count):
        sub = src / f"dir{i // 1000:04d}"
        if not i % 1000:
            sub.mkdir(parents=True)
        (sub / f"file{i:06d}.txt").touch()
    with ArchiveManager(ArchiveConfig(create_checksums=False)) as mgr:  # .meta as in real use
        mgr.create_archive(src, archive)
    return archive


@pytest.mark.parametrize(
    "op", ["extract", "verify", "list", "arcman list", "arcman list -l", "arcman list --json"]
)
def test_memory_grows_little_per_member(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    # Fixed costs larger than these archives would grow with them: the decompressor's read-
    # ahead (a few 4 MiB pieces), the 1 MiB chunks the manifest is read in and the 1 MiB kept
    # in memory by each spool. Shrunk, they stop growing, leaving the cost per member.
    monkeypatch.setattr(decompress, "PIECE", 64 * 1024)
    monkeypatch.setattr(extract, "CHUNK", 64 * 1024)
    monkeypatch.setattr(check, "_SPOOL_IN_MEMORY", 64 * 1024)
    monkeypatch.setattr(_manifest, "_READ_SPOOL_IN_MEMORY", 64 * 1024)
    monkeypatch.setattr(_metadata, "_ITEMS_PER_PIECE", 256)  # entries encoded at a time
    # Sequential: the window of members in flight, bounded by the budget but filled as fast as
    # the workers lag, would make the measure depend on timing.
    config = ArchiveConfig(
        enable_parallelization=False, limits=ExtractionLimits(None, None, None, None)
    )
    peaks = {}
    with ArchiveManager(config) as manager:
        for count in (SMALL, SMALL, LARGE):  # the first run warms up imports, threads, caches
            archive = _archive(tmp_path, count)
            tracemalloc.start()
            try:
                if op == "verify":
                    manager.verify_archive(archive)
                elif op == "list":
                    entries = manager.list_archive(archive)
                    assert len(entries) == count + count // 1000
                elif op.startswith("arcman"):
                    args = [*op.split()[1:], str(archive), "--no-parallel"]
                    with open(os.devnull, "w") as out, contextlib.redirect_stdout(out):
                        assert main(args) == 0
                else:
                    manager.extract_archive(archive, tmp_path / "dest", replace=True)
                peaks[count] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    growth = (peaks[LARGE] - peaks[SMALL]) / (LARGE - SMALL)
    print(f"{op}: {growth:.0f} bytes per member")
    assert growth < MAX_BYTES_PER_MEMBER


def test_expanded_size_is_read_without_decoding_the_member_list(tmp_path: Path) -> None:
    """The free-space check reads ``uncompressed_size`` from the .meta sidecar; decoding its
    member list too was the peak of extracting a million files (~100 MiB of str objects)."""
    archive = _archive(tmp_path, 10)
    meta = Path(f"{archive}.meta")
    text = meta.read_text()
    assert text.index('"uncompressed_size"') < text.index('\n  "files": [')
    # Never decoded, so a list that is not even JSON does not matter.
    meta.write_text(text[: text.index('\n  "files": [')] + '\n  "files": [ not json')
    assert extract._known_size(ArchiveSource(str(archive))) == (0, repr(str(meta)))
    size = Path(archive).stat().st_size  # a sidecar of another archive gives no hint
    meta.write_text(f'{{"compressed_size": {size}, "uncompressed_size": 123}}')
    assert extract._known_size(ArchiveSource(str(archive))) == (123, repr(str(meta)))
    meta.write_text(f'{{"compressed_size": {size + 1}, "uncompressed_size": 123}}')
    assert extract._known_size(ArchiveSource(str(archive))) is None
    meta.write_text("not json")
    assert extract._known_size(ArchiveSource(str(archive))) is None
