"""The gzip decoder reads what gzip reads and refuses what gzip refuses, threaded or not: each
member's CRC-32 and length (ISIZE) trailer is checked, concatenated members and zero padding
are one stream, anything else after the last member is an error."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from arcman._errors import CorruptArchiveError
from arcman._extract.decompress import PIECE, DecompressedStream
from arcman._formats import CompressionFormat
from arcman._stats import PhaseClock

DATA = bytes(range(256)) * (PIECE // 200) + b"tail"  # two pieces, the last one short


def decode(path: Path, threaded: bool) -> bytes:
    stream = DecompressedStream(
        str(path), CompressionFormat.TAR_GZ, PhaseClock(), threaded, read_ahead=16 * 1024 * 1024
    )
    try:
        return stream.read()
    finally:
        stream.close()


def member(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture(params=[True, False], ids=["threaded", "sequential"])
def threaded(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.mark.parametrize(
    "archive",
    [member(DATA), member(DATA[:1000]) + member(DATA[1000:]), member(DATA) + bytes(3000),
     member(DATA[:7]) + bytes(5) + member(b"") + member(DATA[7:]) + bytes(1)],
    ids=["one member", "two members", "zero padding", "padding and an empty member"],
)
def test_gzip_streams_read_as_gzip_reads_them(
    tmp_path: Path, archive: bytes, threaded: bool
) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(archive)
    assert decode(path, threaded) == DATA
    assert gzip.decompress(archive) == DATA


def _with_trailer(data: bytes, crc_delta: int, size_delta: int) -> bytes:
    packed = member(data)
    crc, size = struct.unpack("<II", packed[-8:])
    trailer = struct.pack("<II", (crc + crc_delta) % 2**32, (size + size_delta) % 2**32)
    return packed[:-8] + trailer


@pytest.mark.parametrize(
    "archive",
    [_with_trailer(DATA, 1, 0), _with_trailer(DATA, 0, 1),
     member(DATA[:10]) + _with_trailer(DATA[10:], 0, -1),
     member(DATA)[:-1], member(DATA) + b"\0\0garbage", member(DATA) + b"\x1f\x8b",
     member(DATA) + member(b"x")[:12]],
    ids=["crc", "isize", "isize of the second member", "cut trailer", "garbage after padding",
         "a stray magic", "a cut second member"],
)
def test_damaged_gzip_refused(tmp_path: Path, archive: bytes, threaded: bool) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(archive)
    with pytest.raises(CorruptArchiveError):
        decode(path, threaded)
