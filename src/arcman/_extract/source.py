"""ArchiveSource: an archive's bytes, from a file or from a stream read once (``-``: stdin).

A file is opened by whichever reader needs it: format detection, the ``.sha256`` sidecar's
hash, zip's central directory, the decompressor. A stream (a pipe from ``ssh`` or ``curl``, a
socket, an HTTP response) can be read only once, front to back, so that a Pi can unpack an
archive it never stores: its first bytes are read here to tell the format and handed back
ahead of the rest, its SHA-256 is computed as it passes, and it has no sidecars and no size
known in advance (unless it is a regular file: ``< app.tar.zst``). A zip, whose directory is at
its end, is saved first (``spool``) to an unlinked temporary file, which nothing can see or
leave behind, and read from there as a file is.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
from collections.abc import Callable
from types import TracebackType
from typing import IO, cast

from .._atomic import describe_os_error, may_stall
from .._errors import DestinationError, LimitExceededError, SourceError
from .._formats import HEAD_SIZE, CompressionFormat

SPOOL_CHUNK = 1024 * 1024


class ArchiveSource:
    """Where an archive is read from: ``path`` for a file, else a stream (``path`` None)."""

    def __init__(self, archive: str | IO[bytes]) -> None:
        self._stream: IO[bytes] | None = None
        self._reader: _Replay | None = None
        self._size: int | None = None
        self._spooled: IO[bytes] | None = None
        if isinstance(archive, str):
            # Absolute now: an extraction's commit may replace the working directory itself
            # (``-C .``), after which a relative path can no longer be resolved.
            self.path: str | None = os.path.abspath(archive)
            self.name = archive
            self.fmt = CompressionFormat.detect(archive)
            return
        if not callable(getattr(archive, "read", None)):
            raise TypeError(f"cannot read an archive from {archive!r}: it has no read()")
        self.path = None
        label = getattr(archive, "name", None)
        self.name = label if isinstance(label, str) else "<stream>"
        self._size = _size_left(archive)
        self._head = _read_fully(archive, HEAD_SIZE, self.name)
        self.fmt = CompressionFormat.detect_head(self._head, self.name)
        self._head, self._stream = _past_the_buffer(archive, self._head, self.name)

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release a spooled zip's temporary (idempotent; a stream given is the caller's)."""
        if self._spooled is not None:
            spooled, self._spooled = self._spooled, None
            # Failing, close() flushes again what the buffer holds when the disk filled,
            # reported by spool() already: thrown away with the unlinked file, not raised over
            # that error.
            with contextlib.suppress(OSError):
                spooled.close()

    @property
    def needs_spool(self) -> bool:
        """Whether this is a zip from a stream not saved yet (see ``spool``)."""
        return self.path is None and self.fmt is CompressionFormat.ZIP and self._stream is not None

    def spool(
        self, directory: str | None, limit: int | None, saved: Callable[[int], None]
    ) -> None:
        """Save a zip from a stream to an unlinked temporary file in ``directory`` (None: the
        system's), hashed as it passes: zipfile needs to seek to the directory at its end.
        More than ``limit`` bytes is a LimitExceededError: a stream has no end it must reach.
        ``saved`` is told the bytes saved so far after each piece."""
        reader = self.open()  # the stream's errors are SourceErrors, not OSErrors
        size = 0
        try:
            # Closed by close(), whatever happens here: the source owns it from now on.
            self._spooled = spooled = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
            while chunk := reader.read(SPOOL_CHUNK):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise LimitExceededError(
                        self.name, f"a zip read from a stream is saved before it is read, and "
                        f"this one is over {limit} bytes (the total size limit and its headers)"
                    )
                spooled.write(chunk)
                saved(size)
            spooled.flush()
        except OSError as exc:
            what = f"a temporary copy of {self.name}"
            raise DestinationError(describe_os_error(exc, what)) from exc
        spooled.seek(0)
        self._size = size

    def zip_file(self) -> str | IO[bytes]:
        """What zipfile reads: the file's path, or a stream's spooled copy."""
        if self.path is not None:
            return self.path
        assert self._spooled is not None, "a zip from a stream is read once spooled"
        return self._spooled

    @property
    def size(self) -> int | None:
        """The archive's size in bytes; None for a pipe or a socket (known once read)."""
        return os.path.getsize(self.path) if self.path is not None else self._size

    def open(self) -> IO[bytes]:
        """A reader from the first byte on. A stream has one: a second call is an error."""
        if self.path is not None:
            return open(self.path, "rb")
        if self._stream is None:
            raise RuntimeError(f"{self.name} can be read only once")
        self._reader = _Replay(self._head, self._stream, self.name)
        self._stream = None
        return cast("IO[bytes]", self._reader)  # a RawIOBase: read, readinto, tell: all they use

    def streamed_sha256(self) -> str:
        """The SHA-256 of what has been read of a stream (all of it once its scan is over):
        hashed as it passed, since it cannot be read again."""
        assert self._reader is not None, "a stream's checksum is known once it has been read"
        return self._reader.sha256.hexdigest()


def _size_left(stream: IO[bytes]) -> int | None:
    """What is left to read of a stream that is a regular file (``< app.tar.zst``), for the
    progress total; None for a pipe, a socket or an object without a descriptor."""
    try:
        st = os.fstat(stream.fileno())
        return st.st_size - stream.tell() if stat.S_ISREG(st.st_mode) else None
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is both
        return None


def _past_the_buffer(stream: IO[bytes], head: bytes, name: str) -> tuple[bytes, IO[bytes]]:
    """(``head``, ``stream``), or for a buffered reader of a pipe or a socket
    (``sys.stdin.buffer``): ``head`` with what the reader holds already, and the descriptor
    to read the rest from. Interrupted, an extraction leaves a read that a stalled stream
    holds up to the decompressing thread (DecompressedStream.close); in a BufferedReader's
    read that thread holds the reader's lock, which the interpreter's exit then needs
    ("Fatal Python error: _enter_buffered_busy", SIGABRT); a FileIO's read holds none."""
    if not isinstance(stream, io.BufferedReader) or not may_stall(stream):
        return head, stream
    try:
        # peek() returns what the reader holds; it reads (once) only when it holds nothing.
        held = stream.read(len(stream.peek()))
        raw = io.FileIO(stream.fileno(), "rb", closefd=False)
    except OSError as exc:
        raise SourceError(f"cannot read {name}: {exc.strerror or exc}", name) from exc
    except ValueError as exc:  # the stream was closed
        raise SourceError(f"cannot read {name}: {exc}", name) from exc
    return head + held, raw


def _read_fully(stream: IO[bytes], n: int, name: str) -> bytes:
    """Up to ``n`` bytes: fewer only at the end (a pipe's read() returns what it has)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = stream.read(n - got)
        except OSError as exc:
            raise SourceError(f"cannot read {name}: {exc.strerror or exc}", name) from exc
        except ValueError as exc:  # the stream was closed
            raise SourceError(f"cannot read {name}: {exc}", name) from exc
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _Replay(io.RawIOBase):
    """The stream's head (already read), then the rest of it. A read fills the whole buffer
    unless the stream ends, so the decoders get full pieces rather than a pipe's 64 KiB;
    tell() counts the bytes handed out, which a pipe cannot tell (progress, ratio limit); and
    what is handed out is hashed (the archive's SHA-256)."""

    def __init__(self, head: bytes, stream: IO[bytes], name: str) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream
        self._name = name
        self._position = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        filled = min(len(self._head), len(view))
        view[:filled] = self._head[:filled]
        self._head = self._head[filled:]
        if filled < len(view):
            rest = _read_fully(self._stream, len(view) - filled, self._name)
            view[filled : filled + len(rest)] = rest
            filled += len(rest)
        self._position += filled
        self.sha256.update(view[:filled])
        return filled

    def tell(self) -> int:
        return self._position
