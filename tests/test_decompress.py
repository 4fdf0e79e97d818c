"""The decoders read what gzip, bzip2 and xz read, threaded or not, and refuse the rest: each
gzip member's CRC-32 and length (ISIZE) trailer is checked, concatenated members or streams
(and the zero padding gzip and xz allow) are one stream, anything else after the last one is an
error, where BZ2File and LZMAFile would ignore it."""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import struct
from pathlib import Path
from typing import IO

import pytest

from arcman._backends import isal_zlib
from arcman._errors import CorruptArchiveError
from arcman._extract import decompress
from arcman._extract.decompress import PIECE, DecompressedStream
from arcman._formats import CompressionFormat
from arcman._stats import PhaseClock
from helpers import Stalled

DATA = bytes(range(256)) * (PIECE // 200) + b"tail"  # two pieces, the last one short


def decode(
    path: Path, threaded: bool, fmt: CompressionFormat = CompressionFormat.TAR_GZ
) -> bytes:
    stream = DecompressedStream(
        open(path, "rb"), fmt, PhaseClock(), threaded, read_ahead=16 * 2**20  # noqa: SIM115
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


@pytest.fixture(params=["private", "public"])
def gzip_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """ISA-L's reader as arcman takes it (a private name, for its input buffer), and through
    IGzipFile, the fallback for a release without that name: the same checks either way."""
    if request.param == "public":
        module = isal_zlib()
        if module is None:
            pytest.skip("IGzipFile is ISA-L's, which is not installed here")
        monkeypatch.delattr(module, "_GzipReader")


@pytest.mark.parametrize(
    "archive",
    [member(DATA), member(DATA[:1000]) + member(DATA[1000:]), member(DATA) + bytes(3000),
     member(DATA[:7]) + bytes(5) + member(b"") + member(DATA[7:]) + bytes(1)],
    ids=["one member", "two members", "zero padding", "padding and an empty member"],
)
@pytest.mark.usefixtures("gzip_reader")
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
@pytest.mark.usefixtures("gzip_reader")
def test_damaged_gzip_refused(tmp_path: Path, archive: bytes, threaded: bool) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(archive)
    with pytest.raises(CorruptArchiveError):
        decode(path, threaded)


SMALL = DATA[:300_000]  # bzip2 and xz are slow to compress: a piece is not needed here


@functools.cache
def _pack(fmt: CompressionFormat, data: bytes) -> bytes:
    if fmt is CompressionFormat.TAR_BZ2:
        return bz2.compress(data)
    return lzma.compress(data, format=lzma.FORMAT_XZ)


_BZ2, _XZ = CompressionFormat.TAR_BZ2, CompressionFormat.TAR_XZ


@pytest.mark.parametrize(
    ("fmt", "layout"), [(_BZ2, "one"), (_BZ2, "two"), (_XZ, "one"), (_XZ, "two"),
                        (_XZ, "padding")],
)
def test_bzip2_and_xz_streams_read_as_their_tools_read_them(
    tmp_path: Path, threaded: bool, fmt: CompressionFormat, layout: str
) -> None:
    archive = {
        "one": _pack(fmt, SMALL),
        "two": _pack(fmt, SMALL[:1000]) + _pack(fmt, SMALL[1000:]),
        # xz's stream padding: zeros, a multiple of 4 bytes, between and after streams.
        "padding": _pack(fmt, SMALL[:9]) + bytes(8) + _pack(fmt, SMALL[9:]) + bytes(4),
    }[layout]
    path = tmp_path / "a.tar"
    path.write_bytes(archive)
    assert decode(path, threaded, fmt) == SMALL


@pytest.mark.parametrize("fmt", [_BZ2, _XZ], ids=lambda f: f.value)
@pytest.mark.parametrize("tail", [b"GARBAGE!GARBAGE!", bytes(3), b"\0\0\0\0junk", b"BZh9"])
def test_data_after_the_last_bzip2_or_xz_stream_refused(
    tmp_path: Path, threaded: bool, fmt: CompressionFormat, tail: bytes
) -> None:
    """BZ2File and LZMAFile take all of these for the end of the file: a test of arcman's."""
    path = tmp_path / "a.tar"
    path.write_bytes(_pack(fmt, SMALL) + tail)
    with pytest.raises(CorruptArchiveError):
        decode(path, threaded, fmt)


@pytest.mark.parametrize("fmt", [_BZ2, _XZ], ids=lambda f: f.value)
def test_cut_bzip2_or_xz_stream_refused(
    tmp_path: Path, threaded: bool, fmt: CompressionFormat
) -> None:
    path = tmp_path / "a.tar"
    path.write_bytes(_pack(fmt, SMALL)[:-5])
    with pytest.raises(CorruptArchiveError):
        decode(path, threaded, fmt)


class SpyDecoder:
    """A decoder that records its close()."""

    def __init__(self, decoder: IO[bytes]) -> None:
        self._decoder = decoder
        self.closed = False

    def read(self, n: int) -> bytes:
        return self._decoder.read(n)

    def close(self) -> None:
        self.closed = True
        self._decoder.close()


def _first_half(fmt: CompressionFormat) -> bytes:
    packed = member(DATA) if fmt is CompressionFormat.TAR_GZ else (
        DATA if fmt is CompressionFormat.TAR else _pack(fmt, SMALL)
    )
    return packed[: len(packed) // 2]


@pytest.mark.parametrize(
    "fmt", [CompressionFormat.TAR_GZ, _BZ2, _XZ, CompressionFormat.TAR], ids=lambda f: f.value
)
def test_close_leaves_a_stalled_read_to_the_producer(
    fmt: CompressionFormat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``arcman extract -`` over a network that stalls: close() waited for the producer thread,
    which waited on a read that never returned, and Ctrl-C hung. close() returns now, and
    closes nothing under that read: the producer closes the decoder and the raw file once the
    read returns."""
    raw = Stalled(_first_half(fmt))
    spies: list[SpyDecoder] = []
    real = decompress.open_decoder

    def spy(raw: IO[bytes], fmt: CompressionFormat) -> IO[bytes]:
        spies.append(SpyDecoder(real(raw, fmt)))
        return spies[-1]  # type: ignore[return-value]

    monkeypatch.setattr(decompress, "open_decoder", spy)
    stream = DecompressedStream(
        raw, fmt, PhaseClock(), threaded=True, read_ahead=16 * 2**20  # type: ignore[arg-type]
    )
    assert raw.waiting.wait(30)
    stream.close()
    assert raw.waiting.is_set(), "close() returned only once the stalled read did"
    assert not raw.closed and not spies[0].closed
    raw.resume.set()
    assert raw.closed_event.wait(30)
    assert spies[0].closed


def test_close_of_a_file_returns_with_everything_closed(tmp_path: Path) -> None:
    """A file's read cannot stall: close() waits for the producer, mid-stream too, and no
    descriptor stays open after it."""
    path = tmp_path / "a.tar.gz"
    path.write_bytes(member(DATA))
    raw = open(path, "rb")  # noqa: SIM115 - the stream closes it
    stream = DecompressedStream(raw, CompressionFormat.TAR_GZ, PhaseClock(), True, 16 * 2**20)
    assert stream.read(10) == DATA[:10]
    stream.close()
    assert raw.closed
