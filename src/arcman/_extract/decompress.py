"""DecompressedStream: decompresses an archive on its own thread, ahead of the tar parser.

The decompressor (ISA-L for gzip, libzstd, bzip2, xz) runs on a dedicated thread and hands
4 MiB pieces (large, so that few members straddle two) through a bounded queue, so
decompression overlaps with parsing, hashing and writing while memory stays bounded (member
data handed out as views pins at most the pieces that the sinks' byte budget spans, plus
two). Every decoder reads concatenated streams and reports a truncated one; any decoder
failure surfaces on the consumer side as CorruptArchiveError, and so does anything after the
last stream but the padding its format allows.
In sequential mode the same decoder runs on the caller's thread.

The producer thread owns the decoder and the raw file while it runs, and closes them when it
ends: close() never closes a decoder that the thread may still be using (its C code could
crash). close() waits for the thread unless it waits on a pipe or a socket that may never
deliver (``ssh pi arcman extract -`` over a stalled network): Ctrl-C must not wait for that.
"""

from __future__ import annotations

import bz2
import contextlib
import io
import lzma
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from .._atomic import may_stall
from .._backends import isal_zlib, pyzstd
from .._errors import CorruptArchiveError
from .._formats import CompressionFormat
from .._stats import PhaseClock
from .._workers import STALL_GRACE, WAKE_INTERVAL

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

PIECE = 4 * 1024 * 1024
GZIP_INPUT = 4 * 1024 * 1024
_DEPTH = 4
_END = object()
_POLL = 0.02  # close()'s wait for the thread, between looks at what it is doing


def open_decoder(raw: IO[bytes], fmt: CompressionFormat) -> IO[bytes]:
    if fmt is CompressionFormat.TAR_GZ:
        # ISA-L's C gzip reader, the one behind igzip.IGzipFile (and python-isal's own threaded
        # reader, which also gives it a large buffer): it reads concatenated members and the
        # zero padding between them, checks each member's CRC and length, refuses trailing
        # garbage, and decodes with the GIL released. Taken without IGzipFile's wrappers, to
        # give it GZIP_INPUT: each refill of its input is a Python read() that must win the GIL
        # back from the busy parser, and with the default 512 KiB that wait (up to the 5 ms
        # switch interval) made decoding the stdlib archive next to a busy Python thread take
        # 2.05 s instead of 0.86 s.
        # Without ISA-L (see _backends): Python's own gzip reader, which reads, checks and
        # refuses the same things, through zlib.
        fast = isal_zlib()
        if fast is None:
            import gzip

            return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
        from isal import igzip

        reader = getattr(fast, "_GzipReader", None)  # private: a release may rename it
        if reader is None:
            return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call,return-value]  # the same reader, wrapped
        return reader(raw, GZIP_INPUT)  # type: ignore[no-any-return]
    if fmt is CompressionFormat.TAR_ZST:
        return pyzstd().ZstdFile(raw, mode="rb")  # type: ignore[no-any-return]
    if fmt is CompressionFormat.TAR_BZ2:
        return _Streams(raw, bz2.BZ2Decompressor, padding=False)  # type: ignore[return-value]
    if fmt is CompressionFormat.TAR_XZ:
        return _Streams(  # type: ignore[return-value]
            raw, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), padding=True
        )
    return raw


_RAW_CHUNK = 1024 * 1024


class _Streams:
    """Concatenated bzip2 or xz streams, read as ``bzip2 -d`` and ``xz -d`` read them.

    Hand-written because BZ2File and LZMAFile take data after a stream that does not decode
    for the end of the file: appended garbage, or a damaged later stream, would pass unseen.
    Here only the end of the file may follow a stream, or another stream; for xz, also the
    zero padding (a multiple of 4 bytes) that its format allows between and after streams.
    """

    def __init__(
        self, raw: IO[bytes], new_decoder: Callable[[], Any], *, padding: bool
    ) -> None:
        self._raw = raw
        self._new_decoder = new_decoder
        self._padding = padding
        self._decoder = new_decoder()
        self._pending = b""  # input read for the next stream, not yet fed
        self._finished = False

    def read(self, n: int) -> bytes:
        while not self._finished:
            if self._decoder.eof:
                self._next_stream(self._decoder.unused_data)
                continue
            data = b""
            if self._decoder.needs_input:
                data, self._pending = self._pending or self._raw.read(_RAW_CHUNK), b""
                if not data:
                    raise EOFError("compressed stream is truncated")
            out: bytes = self._decoder.decompress(data, n)
            if out:
                return out
        return b""

    def _next_stream(self, rest: bytes) -> None:
        """Skip what may separate streams; start the next one, or finish at the end."""
        zeros = 0
        while True:
            if not rest:
                rest = self._raw.read(_RAW_CHUNK)
                if not rest:
                    self._finished = True
                    break
            start = len(rest) - len(rest.lstrip(b"\0")) if self._padding else 0
            zeros += start
            rest = rest[start:]
            if rest:
                break
        if zeros % 4:
            raise ValueError(f"{zeros} bytes of padding between streams (not a multiple of 4)")
        if not self._finished:
            self._decoder = self._new_decoder()
            self._pending = rest

    def close(self) -> None:
        pass  # the raw file is DecompressedStream's


class _Stopped(Exception):
    """A read started after close(): the producer ends instead of waiting for more input."""


class _Input(io.RawIOBase):
    """The raw file as the decoder reads it, for close() to see whether the producer thread
    waits on a read, and so that no read starts once close() has asked the thread to stop."""

    def __init__(self, raw: IO[bytes], stop: threading.Event) -> None:
        super().__init__()
        self._raw = raw
        self._stop = stop
        self.reading = False
        self.may_stall = may_stall(raw)

    def readable(self) -> bool:
        return True

    def _start(self) -> None:
        if self._stop.is_set():
            raise _Stopped("decompression stopped")
        self.reading = True

    def read(self, size: int = -1, /) -> bytes:
        self._start()
        try:
            return self._raw.read(size)
        finally:
            self.reading = False

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        self._start()
        try:
            # Every raw file here has it: a file opened "rb", or source.py's _Replay.
            return cast("io.RawIOBase", self._raw).readinto(buffer)
        finally:
            self.reading = False

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class DecompressedStream:
    """A read-only file over an archive's decompressed bytes.

    ``consumed`` is how many compressed bytes had been read when the piece being consumed was
    decoded (for progress and the compression-ratio limit). The producer records it with each
    piece: asking the raw file from the consumer's thread would wait on its lock while the
    decoder reads. The producer thread completes at the end of the data, on the first error, or
    when close() asks it to stop; it then closes the decoder and the raw file.
    """

    def __init__(
        self, raw: IO[bytes], fmt: CompressionFormat, clock: PhaseClock, threaded: bool,
        read_ahead: int,
    ) -> None:
        self._stop = threading.Event()
        self._raw = _Input(raw, self._stop)  # closed by _release()
        self._decoder = open_decoder(cast("IO[bytes]", self._raw), fmt)
        self._clock = clock
        self._buffer = memoryview(b"")
        self._eof = False
        self.produced = 0
        self.position = 0  # decompressed bytes handed out
        self.consumed = 0
        self._pieces: Iterator[tuple[bytes, int] | BaseException | object]
        self._thread: threading.Thread | None = None
        if threaded:
            # Pieces queued ahead; two more are in hand (being decoded, being parsed).
            depth = max(1, min(_DEPTH, read_ahead // PIECE - 2))
            self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(
                target=self._produce, name="arcman-decompress", daemon=True
            )
            self._thread.start()
            self._pieces = self._queued()
        else:
            self._pieces = self._decode()

    def _decode(self) -> Iterator[tuple[bytes, int] | BaseException | object]:
        try:
            while not self._stop.is_set():
                with self._clock.measure("decompression"):
                    piece = self._decoder.read(PIECE)
                    position = self._raw.tell()
                if not piece:
                    break
                yield piece, position
        except Exception as exc:  # every decoder's own error type, reported as one kind
            yield exc
            return
        yield _END

    def _queued(self) -> Iterator[tuple[bytes, int] | BaseException | object]:
        """The producer's items, waited for in turns of WAKE_INTERVAL (see there): a Ctrl-C
        while the stream stalls is acted on at once."""
        while True:
            try:
                yield self._queue.get(timeout=WAKE_INTERVAL)
            except queue.Empty:
                continue

    def _produce(self) -> None:
        try:
            for item in self._decode():
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        finally:
            self._release()

    def _release(self) -> None:
        """Close the decoder and the raw file: by whichever thread reads through them."""
        try:
            self._decoder.close()
        finally:
            self._raw.close()

    def _next_piece(self) -> bool:
        if self._eof:
            return False
        item = next(self._pieces)
        if item is _END:
            self._eof = True
            return False
        if isinstance(item, BaseException):
            self._eof = True
            raise CorruptArchiveError(f"archive data is corrupt or truncated: {item}") from item
        assert isinstance(item, tuple)
        piece, self.consumed = item
        self.produced += len(piece)
        self._buffer = memoryview(piece)
        return True

    def view(self, n: int) -> memoryview:
        """The next ``n`` bytes (fewer at the end of the data): a slice of the decoded piece
        when they lie within it, so member data reaches hashing and writing without a copy."""
        if len(self._buffer) >= n or (not self._buffer and self._next_piece() and
                                      len(self._buffer) >= n):
            out = self._buffer[:n]
            self._buffer = self._buffer[n:]
            self.position += n
            return out
        parts = bytearray()
        while len(parts) < n:
            if not self._buffer and not self._next_piece():
                break
            take = self._buffer[: n - len(parts)]
            parts += take
            self._buffer = self._buffer[len(take) :]
        self.position += len(parts)
        return memoryview(parts)

    def read(self, n: int = -1) -> bytes:
        if n >= 0:
            return bytes(self.view(n))
        parts = [bytes(self._buffer)]
        self.position += len(self._buffer)
        self._buffer = memoryview(b"")
        while self._next_piece():
            parts.append(bytes(self._buffer))
            self.position += len(self._buffer)
        self._buffer = memoryview(b"")
        return b"".join(parts)

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        """Stop decoding. Returns once the decoder and the raw file are closed, unless the
        producer thread waits on a read of a pipe or a socket that does not return within
        STALL_GRACE: it closes them itself when that read returns (a daemon thread, which the
        process's exit does not wait for)."""
        self._stop.set()
        if self._thread is None:
            self._release()
            return
        deadline: float | None = None
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:  # a producer waiting to queue a piece sees the stop at once
                    self._queue.get_nowait()
            if self._raw.reading and self._raw.may_stall:
                now = time.monotonic()
                deadline = now + STALL_GRACE if deadline is None else deadline
                if now >= deadline:
                    return
            self._thread.join(_POLL)
