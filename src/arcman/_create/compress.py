"""Compressors: the stream of tar records in, a compressed archive out, block-parallel.

The design is pigz's. The uncompressed stream is cut into fixed-size blocks; each block is
compressed by a worker; a bounded window of pending blocks is written out strictly in order.
Block boundaries depend only on the byte offset, never on the thread count or on how the
writer called write(), so 1, 2 or 16 threads produce the same archive bytes.

- gzip: raw deflate per block, primed with the previous 32 KiB as a dictionary so the ratio
  stays close to single-stream deflate, ended by a sync flush (the last block finishes the
  stream); CRC-32s are combined. The result is one standard gzip member.
  ISA-L does levels 1-3 (fastest deflate there is), zlib-ng levels 4-9 (zlib-like ratios).
- bzip2 and xz: each block is an independent stream (as pbzip2 and xz -T do); decompressors
  read concatenated streams.
- zstd: libzstd's own multi-threaded compressor (through pyzstd), whose output does not depend
  on the number of workers as long as it runs in threaded mode.
"""

from __future__ import annotations

import bz2
import lzma
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO, Protocol

from .._formats import CompressionFormat
from .._stats import PhaseClock
from .._workers import Submit, start

GZIP_BLOCK = 256 * 1024
DEFLATE_WINDOW = 32 * 1024

class Sink(Protocol):
    """Where the ordered writer sends archive bytes."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Flush everything and end the stream (the underlying file stays open)."""

class PlainSink:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def close(self) -> None:
        self._out.flush()

class BlockCodec(Protocol):
    block_size: int

    def header(self) -> bytes: ...

    def compress(self, block: bytes, history: bytes, last: bool) -> tuple[bytes, int]:
        """Compress one block; return the bytes and the block's CRC-32 (0 if unused)."""

    def trailer(self, crc: int, size: int) -> bytes: ...

def deflate_backend(level: int) -> Any:
    """The deflate implementation for a level: ISA-L below 4, zlib-ng from 4 up."""
    if 1 <= level <= 3:
        from isal import isal_zlib

        return isal_zlib
    from zlib_ng import zlib_ng

    return zlib_ng

class DeflateBlocks:
    """Raw deflate of fixed blocks that concatenate into one valid deflate stream."""

    block_size = GZIP_BLOCK

    def __init__(self, level: int) -> None:
        self.level = level
        self._lib = deflate_backend(level)

    def header(self) -> bytes:
        return b""

    def compress(self, block: bytes, history: bytes, last: bool) -> tuple[bytes, int]:
        lib = self._lib
        if history:
            c = lib.compressobj(self.level, lib.DEFLATED, -15, 8, lib.Z_DEFAULT_STRATEGY, history)
        else:
            c = lib.compressobj(self.level, lib.DEFLATED, -15, 8, lib.Z_DEFAULT_STRATEGY)
        out = c.compress(block) + c.flush(lib.Z_FINISH if last else lib.Z_SYNC_FLUSH)
        return out, lib.crc32(block)

    def trailer(self, crc: int, size: int) -> bytes:
        return b""

class GzipBlocks(DeflateBlocks):
    # A fixed header (no name, no time, OS unknown) keeps archives reproducible.
    _HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

    def header(self) -> bytes:
        return self._HEADER

    def trailer(self, crc: int, size: int) -> bytes:
        return struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)

class Bzip2Blocks:
    def __init__(self, level: int) -> None:
        self.level = level
        self.block_size = level * 100_000

    def header(self) -> bytes:
        return b""

    def compress(self, block: bytes, history: bytes, last: bool) -> tuple[bytes, int]:
        return (bz2.compress(block, self.level) if block else b""), 0

    def trailer(self, crc: int, size: int) -> bytes:
        return b""

class XzBlocks:
    _DICT_SIZES = (256, 1024, 2048, 4096, 4096, 8192, 8192, 16384, 32768, 65536)

    def __init__(self, level: int) -> None:
        self.level = level
        # xz -T uses blocks of three dictionary sizes; capped to bound memory per worker.
        self.block_size = min(24 * 1024 * 1024, 3 * 1024 * self._DICT_SIZES[level])

    def header(self) -> bytes:
        return b""

    def compress(self, block: bytes, history: bytes, last: bool) -> tuple[bytes, int]:
        if not block:
            return b"", 0
        return lzma.compress(block, format=lzma.FORMAT_XZ, preset=self.level), 0

    def trailer(self, crc: int, size: int) -> bytes:
        return b""

class BlockCompressor:
    """Cuts the stream into fixed blocks, compresses them on the pool, writes them in order."""

    def __init__(
        self,
        out: BinaryIO,
        codec: BlockCodec,
        submit: Submit | None,
        threads: int,
        clock: PhaseClock,
        crc_combine: Callable[[int, int, int], int] | None = None,
    ) -> None:
        self._out = out
        self._codec = codec
        self._submit = submit
        self._clock = clock
        self._combine = crc_combine
        self._buffer = bytearray()
        self._history = b""
        self._pending: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        self._max_pending = 2 * threads + 1
        self._crc = 0
        self._size = 0
        self.compressed_size = 0
        out.write(codec.header())
        self.compressed_size += len(codec.header())

    def write(self, data: bytes) -> None:
        self._buffer += data
        size = self._codec.block_size
        if len(self._buffer) < size:
            return
        view = memoryview(self._buffer)
        offset = 0
        while len(self._buffer) - offset >= size:
            self._dispatch(bytes(view[offset : offset + size]), last=False)
            offset += size
        view.release()
        del self._buffer[:offset]

    @property
    def crc(self) -> int:
        """CRC-32 of everything written so far (when the codec combines CRCs)."""
        return self._crc

    def close(self) -> None:
        self._dispatch(bytes(self._buffer), last=True)
        self._buffer.clear()
        while self._pending:
            self._emit()
        trailer = self._codec.trailer(self._crc, self._size)
        self._out.write(trailer)
        self.compressed_size += len(trailer)
        self._out.flush()

    def _dispatch(self, block: bytes, last: bool) -> None:
        while len(self._pending) >= self._max_pending:
            self._emit()
        job = start(self._submit, self._compress, block, self._history, last)
        self._pending.append((job, len(block)))
        self._history = block[-DEFLATE_WINDOW:] if len(block) >= DEFLATE_WINDOW else (
            (self._history + block)[-DEFLATE_WINDOW:]
        )

    def _compress(self, block: bytes, history: bytes, last: bool) -> tuple[bytes, int]:
        with self._clock.measure("compression"):
            return self._codec.compress(block, history, last)

    def _emit(self) -> None:
        job, length = self._pending.popleft()
        data, crc = job.result()
        self._out.write(data)
        self.compressed_size += len(data)
        if self._combine is not None:
            self._crc = self._combine(self._crc, crc, length) if self._size else crc
        self._size += length

class ZstdSink:
    """libzstd's multi-threaded frame writer; always in threaded mode so the bytes match."""

    def __init__(self, out: BinaryIO, level: int, threads: int, clock: PhaseClock) -> None:
        import pyzstd

        self._out = out
        self._clock = clock
        self._compressor = pyzstd.ZstdCompressor(
            {
                pyzstd.CParameter.compressionLevel: level,
                pyzstd.CParameter.nbWorkers: threads,
                pyzstd.CParameter.checksumFlag: 1,
            }
        )
        self._flush_frame = pyzstd.ZstdCompressor.FLUSH_FRAME

    def write(self, data: bytes) -> None:
        with self._clock.measure("compression"):
            out = self._compressor.compress(data)
        if out:
            self._out.write(out)

    def close(self) -> None:
        with self._clock.measure("compression"):
            out = self._compressor.flush(self._flush_frame)
        self._out.write(out)
        self._out.flush()

def open_sink(
    fmt: CompressionFormat,
    level: int,
    out: BinaryIO,
    submit: Submit | None,
    threads: int,
    clock: PhaseClock,
) -> Sink:
    """The compressing sink for a tar-based format."""
    if fmt is CompressionFormat.TAR:
        return PlainSink(out)
    if fmt is CompressionFormat.TAR_ZST:
        return ZstdSink(out, level, threads, clock)
    if fmt is CompressionFormat.TAR_GZ:
        from isal import isal_zlib

        return BlockCompressor(
            out, GzipBlocks(level), submit, threads, clock, isal_zlib.crc32_combine
        )
    codec: BlockCodec = Bzip2Blocks(level) if fmt is CompressionFormat.TAR_BZ2 else XzBlocks(level)
    return BlockCompressor(out, codec, submit, threads, clock)
