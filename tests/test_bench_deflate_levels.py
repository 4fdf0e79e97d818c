"""bench/deflate_levels.py: what it times is the deflate stream create writes."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import pytest

from arcman._create.compress import GzipBlocks
from helpers import load_bench

levels = load_bench("deflate_levels")


@pytest.mark.parametrize("level", [1, 6, 9])
def test_the_timed_blocks_make_one_gzip_member(level: int) -> None:
    data = b"".join(bytes([i % 7]) * 5000 + bytes(range(256)) * 9 for i in range(600))
    codec = GzipBlocks(level)
    member = codec.header() + b"".join(levels.blocks(level, data))
    member += codec.trailer(zlib.crc32(data), len(data))
    assert zlib.decompress(member, wbits=31) == data
    assert levels._deflate(level, data)[1] == len(member) - 18  # header and trailer


@pytest.mark.needs_fast_libs  # the backends it names
@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip is not installed")
def test_prints_one_row_per_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("hello world\n" * 2000)
    argv = ["deflate_levels", str(tree), "--levels", "1,6", "--repeat", "1"]
    monkeypatch.setattr("sys.argv", argv)
    levels.main()
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["level", "backend", "CPU", "s", "MB/s", "size"]
    assert [row.split()[:3] for row in out[2:]] == [["1", "isal", "1"], ["6", "zlib_ng", "5"]]
