"""Compressors: the stream of tar records in, a compressed archive out, block-parallel.

The design is pigz's. The uncompressed stream is cut into fixed-size blocks; each block is
compressed by a worker; a bounded window of pending blocks is written out strictly in order.
Block boundaries depend only on the byte offset, never on the thread count or on how the
writer called write(), so 1, 2 or 16 threads produce the same archive bytes.

- gzip: raw deflate per block, primed with the previous 32 KiB as a dictionary so the ratio
  stays close to single-stream deflate, ended by a sync flush (the last block finishes the
  stream); CRC-32s are combined. The result is one standard gzip member. Stretches that do
  not compress (already compressed files) are stored at every level (``DeflateBlocks``),
  where zlib-ng 5 spent 17x the CPU of ISA-L 1's test to find that out.
  Levels map to the backend that was measured best for them (CPU seconds of one core on the
  257 MB stdlib tar, 1 MiB blocks, size relative to ``gzip -6``'s 67.3 MB):

  ======  ==============  ========  ======
  arcman  backend         MB/s      size
  ======  ==============  ========  ======
  1       ISA-L 1         517       1.144 (gzip -1: 1.146)
  2       ISA-L 2         497       1.130
  3       ISA-L 3         314       1.111
  4       zlib-ng 3       133       1.059
  5       zlib-ng 4       114       1.036
  6       zlib-ng 5       101       1.012
  7       zlib-ng 6        82       1.008
  8       zlib-ng 7        52       0.998
  9       zlib-ng 9        24       0.982
  ======  ==============  ========  ======

  The default (6) is zlib-ng 5: within 2 % of gzip -6's size at 1.25x zlib-ng 6's speed.
  zlib-ng 8 is skipped: slower than its level 9 here and barely smaller than 7. Where these
  libraries are not installed (32-bit ARM: see _backends), the standard library's zlib
  deflates at the arcman level: the same format, gzip's own sizes, 2.8x zlib-ng 5's CPU.
  Block size: 1 MiB costs ~5 % less CPU than 256 KiB (fewer dictionary primings and sync
  flushes) at the same size; priming itself costs ~3 % CPU and saves 1.5 % of the size.
- bzip2 and xz: each block is an independent stream (as pbzip2 and xz -T do); decompressors
  read concatenated streams.
- zstd: each 8 MiB block is an independent frame (with its checksum), compressed on the pool;
  ``zstd -d``, GNU tar and pyzstd read concatenated frames. Measured on the stdlib tar at
  level 3 against libzstd's own multi-threaded mode (one frame, 2 workers): 0.73 s of CPU
  instead of 1.05 s and no thread of its own, at 0.9 % more size (still 0.3 % under
  ``zstd -T2 -3``); 4 MiB frames cost 2.6 % size, 16 MiB ones leave a worker idle at the end.
"""

from __future__ import annotations

import bz2
import functools
import io
import lzma
import queue
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, Protocol

from .._atomic import HashingWriter
from .._backends import crc32_combiner, isal_zlib, pyzstd, zlib_ng
from .._formats import CompressionFormat
from .._stats import PhaseClock
from .._workers import (
    STALL_GRACE,
    WAKE_INTERVAL,
    ByteBudget,
    Submit,
    codec_share,
    output_share,
    start,
)

GZIP_BLOCK = 1024 * 1024
DEFLATE_WINDOW = 32 * 1024
ZSTD_BLOCK = 8 * 1024 * 1024

class Output(Protocol):
    """Where compressed bytes go: the AtomicFile, or a ThreadedWriter in front of it."""

    def write(self, data: bytes, /) -> Any: ...

    def flush(self) -> None: ...


class Sink(Protocol):
    """Where the ordered writer sends archive bytes, as a list of pieces in order."""

    def writelines(self, parts: list[bytes]) -> None:
        """Take the pieces; the caller may reuse the list (not the pieces) afterwards."""

    def close(self) -> None:
        """Flush everything and end the stream (the underlying file stays open)."""

class PlainSink:
    def __init__(self, out: Output) -> None:
        self._out = out

    def writelines(self, parts: list[bytes]) -> None:
        self._out.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def close(self) -> None:
        self._out.flush()

# Starting a thread and handing it the bytes cost more than writing a small archive does. With
# this, one block compressed by the caller, and a single read batch read by it (read.py), 10
# files of 2-8 KB take 83.2 ms with the pool on instead of 84.9 ms (--no-parallel: 84.4 ms;
# medians of 120 alternating rounds).
START_AFTER = 256 * 1024


class ThreadedWriter:
    """Runs a writing stage (``write``, then ``finish``) on a thread of its own.

    Writing and hashing the archive (the AtomicFile hashes what it writes) took ~0.2 s of the
    caller thread on the stdlib corpus; it releases the GIL, so here it overlaps with building
    the tar stream. A failed write is raised by the next write(), flush() or close(); nothing
    after it is written. The thread starts only once START_AFTER bytes have come: a smaller
    archive is written by the caller when it flushes.
    """

    def __init__(
        self, write: Callable[[bytes], object], finish: Callable[[], None], in_flight: int,
        *, may_stall: bool = False,
    ) -> None:
        self._write = write
        self._finish = finish
        self._may_stall = may_stall  # a write may wait for good (a pipe nobody reads)
        self._writing = False
        self._abandoned = False
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        # Bounded in bytes, not items: a zstd frame is several MiB, and 8 queued ones cost
        # ~60 MB of peak RSS on the 2 x 1 GiB corpus.
        self._budget = ByteBudget(in_flight)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._unstarted: list[bytes] | None = []  # what came before the thread started
        self._unstarted_bytes = 0

    def _start(self, held: list[bytes]) -> None:
        self._thread = threading.Thread(target=self._run, name="arcman-output", daemon=True)
        self._thread.start()
        for data in held:
            self._budget.acquire(len(data))
            self._queue.put(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None and not self._abandoned:
                self._writing = True
                try:
                    self._write(data)
                except BaseException as exc:  # handed to the producer by _check()
                    self._error = exc
                finally:
                    self._writing = False
            self._budget.release(len(data))

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes) -> None:
        self._check()
        if self._unstarted is not None:
            if self._unstarted_bytes + len(data) < START_AFTER:
                self._unstarted.append(data)
                self._unstarted_bytes += len(data)
                return
            held, self._unstarted = self._unstarted, None
            self._start(held)
        self._budget.acquire(len(data))
        self._queue.put(data)

    def flush(self) -> None:
        """Wait for everything queued to be written, then finish the stage."""
        if self._unstarted is not None:
            held, self._unstarted = self._unstarted, None
            for data in held:
                self._write(data)
        self.stop()
        self._check()
        self._finish()

    close = flush

    def stop(self, *, abandon: bool = False) -> None:
        """End the thread once what is queued has been written (or dropped after an error).
        Bytes held before the thread started are dropped: only flush() writes them.

        ``abandon`` (the operation failed, or Ctrl-C): what is queued is dropped, and a write
        to an output that may stall is waited for STALL_GRACE at most, then left to the thread (a
        daemon, which the process's exit does not wait for): ``arcman create -o - | ssh ...``
        whose network stops taking bytes hung on Ctrl-C."""
        self._unstarted = None
        if self._thread is None or not self._thread.is_alive():
            return
        self._abandoned = abandon
        self._queue.put(None)
        deadline: float | None = None
        while self._thread.is_alive():
            if abandon and self._writing and self._may_stall:
                now = time.monotonic()
                deadline = now + STALL_GRACE if deadline is None else deadline
                if now >= deadline:
                    return
            self._thread.join(WAKE_INTERVAL)  # see WAKE_INTERVAL


class BlockCodec(Protocol):
    block_size: int

    def header(self) -> bytes: ...

    def compress(self, block: bytes | memoryview, history: bytes, last: bool) -> tuple[bytes, int]:
        """Compress one block; return the bytes and the block's CRC-32 (0 if unused)."""

    def trailer(self, crc: int, size: int) -> bytes: ...

# arcman level -> (use ISA-L, the backend's own level); see the table above.
_DEFLATE_LEVELS = {
    1: (True, 1), 2: (True, 2), 3: (True, 3), 4: (False, 3), 5: (False, 4),
    6: (False, 5), 7: (False, 6), 8: (False, 7), 9: (False, 9),
}


def deflate_backend(level: int) -> tuple[Any, int]:
    """The deflate module and its own level for an arcman level 1-9: ISA-L or zlib-ng as the
    table says; where that one is not installed (see _backends), zlib-ng or the standard
    library's zlib at the arcman level, whose sizes are gzip's own at that level."""
    isal, native = _DEFLATE_LEVELS[level]
    preferred = isal_zlib() if isal else zlib_ng()
    if preferred is not None:
        return preferred, native
    fallback = zlib_ng() if isal else None
    return (fallback or zlib), level

class DeflateBlocks:
    """Raw deflate of fixed blocks that concatenate into one valid deflate stream.

    Stretches of a block that do not compress (already compressed files: images, archives,
    wheels) are stored, whatever the level: zlib-ng 5 spent 18.7 ms of CPU a MiB of random
    bytes to store them in the end (1.0003x). A block is judged span by span (``flat_spans``);
    a run of flat spans is tried with ISA-L 1 (1.1 ms a MiB) and stored if that does not
    shrink it by STORED_ABOVE; every other run is deflated at the level. Each run is primed
    with the 32 KiB before it and ended by a sync flush, so the block stays one piece of the
    stream, and its bytes still depend on its content alone.
    """

    block_size = GZIP_BLOCK

    def __init__(self, level: int) -> None:
        self._lib, self._native = deflate_backend(level)
        # Levels 1-3 are ISA-L throughout: nothing to tell apart. Without ISA-L nothing is:
        # zlib's level 1 took as long to try 1 MiB of random bytes (21.9 ms) as its level 6
        # to deflate them (22.8 ms), and its probe of a sample 30x ISA-L's.
        fast = isal_zlib()
        self._fast = None if self._lib is fast else fast

    def header(self) -> bytes:
        return b""

    def compress(self, block: bytes | memoryview, history: bytes, last: bool) -> tuple[bytes, int]:
        lib = self._lib
        view = memoryview(block)
        runs = [(0, len(view), False)] if self._fast is None else flat_spans(view, self._fast)
        pieces = []
        for offset, end, flat in runs:
            run = view[offset:end]
            # Runs start at multiples of PROBE_SPAN, which is longer than the window.
            before = history if offset == 0 else view[offset - DEFLATE_WINDOW : offset]
            final = last and end == len(block)
            if flat and len(_deflate(self._fast, 1, run, b"", False)) >= STORED_ABOVE * len(run):
                # Stored, not kept as ISA-L 1 made it: its Huffman-coded random bytes took
                # twice as long to inflate (0.26 s instead of 0.14 s for the medium50 tar).
                pieces.append(_deflate(lib, 0, run, b"", final))
                continue
            pieces.append(_deflate(lib, self._native, run, before, final))
        return pieces[0] if len(pieces) == 1 else b"".join(pieces), lib.crc32(view)

    def trailer(self, crc: int, size: int) -> bytes:
        return b""


# Incompressible data is told by a PROBE_SAMPLE from the middle of each PROBE_SPAN of a block:
# ISA-L level 0 (one pass, stock Huffman codes, ~5 us a sample) makes it larger (~1.26x),
# while text and code come out at ~0.6. 1,024-byte samples of 64 KiB spans cost ~0.8 % of
# zlib-ng 5's time on the stdlib tar; coarser spans missed much of a corpus that mixes random
# and text data every 256 KiB. A flat run is stored only if ISA-L 1 cannot shrink it by 1 %
# (STORED_ABOVE): then at most ~1.5 % of it was text, and storing costs at most ~1 % of it.
PROBE_SPAN = 64 * 1024
PROBE_SAMPLE = 1024
STORED_ABOVE = 0.99


def flat_spans(block: memoryview, isal_zlib: Any) -> list[tuple[int, int, bool]]:
    """The block as runs of spans ``(start, end, flat)``; flat runs hardly compress."""
    runs: list[tuple[int, int, bool]] = []
    size = len(block)
    for offset in range(0, size, PROBE_SPAN):
        end = min(size, offset + PROBE_SPAN)
        flat = False
        if end - offset >= 2 * PROBE_SAMPLE:
            middle = (offset + end - PROBE_SAMPLE) // 2
            sample = block[middle : middle + PROBE_SAMPLE]
            flat = len(isal_zlib.compress(sample, 0, -15)) >= PROBE_SAMPLE
        if runs and runs[-1][2] == flat:
            runs[-1] = (runs[-1][0], end, flat)
        else:
            runs.append((offset, end, flat))
    return runs or [(0, 0, False)]


def _deflate(
    lib: Any, level: int, data: bytes | memoryview, before: bytes | memoryview, last: bool
) -> bytes:
    """Raw deflate of ``data`` primed with ``before``, ended by a sync flush (or finished)."""
    if before:
        c = lib.compressobj(level, lib.DEFLATED, -15, 8, lib.Z_DEFAULT_STRATEGY, before)
    else:
        c = lib.compressobj(level, lib.DEFLATED, -15, 8, lib.Z_DEFAULT_STRATEGY)
    out: bytes = c.compress(data) + c.flush(lib.Z_FINISH if last else lib.Z_SYNC_FLUSH)
    return out

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

    def compress(self, block: bytes | memoryview, history: bytes, last: bool) -> tuple[bytes, int]:
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

    def compress(self, block: bytes | memoryview, history: bytes, last: bool) -> tuple[bytes, int]:
        if not block:
            return b"", 0
        return lzma.compress(block, format=lzma.FORMAT_XZ, preset=self.level), 0

    def trailer(self, crc: int, size: int) -> bytes:
        return b""

def _tail(parts: list[bytes | memoryview]) -> bytes:
    """The last DEFLATE_WINDOW bytes of the pieces (all of them if fewer)."""
    tail: list[bytes | memoryview] = []
    need = DEFLATE_WINDOW
    for part in reversed(parts):
        if len(part) >= need:
            tail.append(memoryview(part)[len(part) - need :])
            break
        tail.append(part)
        need -= len(part)
    return b"".join(reversed(tail))


class ZstdBlocks:
    """Each block one zstd frame (with its checksum), from a compression context kept by each
    worker thread: ``pyzstd.compress`` set up a fresh context for every frame, whose tables
    were faulted in anew each time: the medium50 tar took 0.56 s of one core at level 3
    instead of 0.51 s (the stdlib tar: no difference), for the same bytes."""

    block_size = ZSTD_BLOCK

    def __init__(self, level: int) -> None:
        zstd = pyzstd()
        self._new = functools.partial(zstd.ZstdCompressor, {
            zstd.CParameter.compressionLevel: level,
            zstd.CParameter.checksumFlag: 1,
        })
        self._end_frame = zstd.ZstdCompressor.FLUSH_FRAME
        # A context is not to be shared between threads; each thread's goes with this object.
        self._contexts = threading.local()

    def header(self) -> bytes:
        return b""

    def compress(self, block: bytes | memoryview, history: bytes, last: bool) -> tuple[bytes, int]:
        context = getattr(self._contexts, "compressor", None)
        if context is None:
            context = self._contexts.compressor = self._new()
        # An empty stream is one empty frame.
        return context.compress(block, self._end_frame), 0

    def trailer(self, crc: int, size: int) -> bytes:
        return b""

class BlockCompressor:
    """Cuts the stream into fixed blocks, compresses them on the pool, writes them in order."""

    def __init__(
        self,
        out: Output,
        codec: BlockCodec,
        submit: Submit | None,
        threads: int,
        clock: PhaseClock,
        in_flight: int,
        crc_combine: Callable[[int, int, int], int] | None = None,
    ) -> None:
        self._out = out
        self._codec = codec
        self._submit = submit
        self._clock = clock
        self._combine = crc_combine
        # Pieces not yet cut into a block: each block is joined from them in one copy.
        self._parts: list[bytes | memoryview] = []
        self._held = 0
        self._history = b""
        self._pending: deque[tuple[Future[tuple[bytes, int]], int]] = deque()
        # Buffers that blocks are copied into, kept for the next blocks (at most one for each
        # block in flight): a fresh 8 MiB zstd block cost ~3 ms of page faults, with the GIL
        # held, where a reused one costs a copy.
        self._spare: list[io.BytesIO] = []
        # Enough blocks in flight to keep every worker busy (fewer when blocks are large), as
        # far as ``in_flight`` bytes allow (always one).
        busy = max(threads + 1, (2 * threads + 1) * GZIP_BLOCK // codec.block_size)
        self._max_pending = max(1, min(busy, in_flight // codec.block_size))
        self._crc = 0
        self._size = 0
        self.compressed_size = 0
        out.write(codec.header())
        self.compressed_size += len(codec.header())

    def writelines(self, parts: list[bytes]) -> None:
        self._parts.extend(parts)
        self._held += sum(map(len, parts))
        size = self._codec.block_size
        while self._held >= size:
            self._dispatch(self._take(size), size, last=False)

    def _take(self, size: int) -> list[bytes | memoryview]:
        """The pieces that make up the first ``size`` held bytes (the last one cut if needed).
        They are copied into a block by the worker that compresses it: an 8 MiB join cost the
        writer thread ~10 ms, mostly page faults of the fresh block."""
        parts = self._parts
        taken = 0
        count = 0
        while count < len(parts) and taken < size:
            if taken + len(parts[count]) > size:
                break
            taken += len(parts[count])
            count += 1
        block = parts[:count]
        del parts[:count]
        if taken < size:
            head = memoryview(parts[0])
            block.append(head[: size - taken])
            parts[0] = head[size - taken :]
        self._held -= size
        return block

    @property
    def crc(self) -> int:
        """CRC-32 of everything written so far (when the codec combines CRCs)."""
        return self._crc

    def close(self) -> None:
        size = self._held
        # A stream of one block has nothing to overlap with: the caller compresses it.
        alone = self._size == 0 and not self._pending
        self._dispatch(self._take(size), size, last=True, inline=alone)
        while self._pending:
            self._emit()
        trailer = self._codec.trailer(self._crc, self._size)
        self._out.write(trailer)
        self.compressed_size += len(trailer)
        self._out.flush()

    def _dispatch(
        self, parts: list[bytes | memoryview], size: int, last: bool, inline: bool = False
    ) -> None:
        while len(self._pending) >= self._max_pending:
            self._emit()
        history = self._history
        self._history = _tail([history, *parts] if size < DEFLATE_WINDOW else parts)
        submit = None if inline else self._submit
        job = start(submit, self._compress, parts, history, last)  # it empties ``parts``
        self._pending.append((job, size))

    def _compress(
        self, parts: list[bytes | memoryview], history: bytes, last: bool
    ) -> tuple[bytes, int]:
        with self._clock.measure("compression"):
            if len(parts) == 1 and type(parts[0]) is bytes:
                return self._codec.compress(parts.pop(), history, last)
            try:
                buffer = self._spare.pop()
            except IndexError:
                buffer = io.BytesIO()
                # Sized once: grown piece by piece, it went through every size up to the
                # block's, and the freed steps stayed in the allocator (+11 MiB of peak RSS
                # for 8 MiB zstd blocks of 300,000 empty files).
                buffer.seek(self._codec.block_size - 1)
                buffer.write(b"\0")
            buffer.seek(0)
            buffer.writelines(parts)
            # Dropped now, not when the job is done: as small objects (tar headers) the pieces
            # cost more than the block, and two 8 MiB zstd blocks in flight doubled that.
            parts.clear()
            with buffer.getbuffer() as whole, whole[: buffer.tell()] as block:
                result = self._codec.compress(block, history, last)
            self._spare.append(buffer)
            return result

    def _emit(self) -> None:
        job, length = self._pending.popleft()
        data, crc = job.result()
        self._out.write(data)
        self.compressed_size += len(data)
        if self._combine is not None:
            self._crc = self._combine(self._crc, crc, length) if self._size else crc
        self._size += length

@contextmanager
def open_sink(
    fmt: CompressionFormat,
    level: int,
    out: HashingWriter,
    submit: Submit | None,
    threads: int,
    clock: PhaseClock,
    budget: int,
) -> Iterator[Sink]:
    """The compressing sink for a tar-based format, within its shares of the memory
    ``budget``. Unless sequential, the archive is written on a thread of its own, which ends
    with the block."""
    codec = _codec(fmt, level)
    writer = None if submit is None else ThreadedWriter(
        out.write, out.flush, output_share(budget), may_stall=out.may_stall
    )
    target: Output = out if writer is None else writer
    try:
        if codec is None:
            yield PlainSink(target)
        else:
            combine = crc32_combiner() if isinstance(codec, GzipBlocks) else None
            yield BlockCompressor(
                target, codec, submit, threads, clock, codec_share(budget), combine
            )
    except BaseException:
        if writer is not None:
            writer.stop(abandon=True)
        raise
    if writer is not None:
        writer.stop()  # ended already by the sink's close(), unless the caller did not close it


def _codec(fmt: CompressionFormat, level: int) -> BlockCodec | None:
    """The block codec of a tar-based format (None: a plain tar)."""
    if fmt is CompressionFormat.TAR:
        return None
    if fmt is CompressionFormat.TAR_GZ:
        return GzipBlocks(level)
    if fmt is CompressionFormat.TAR_ZST:
        return ZstdBlocks(level)
    return Bzip2Blocks(level) if fmt is CompressionFormat.TAR_BZ2 else XzBlocks(level)
