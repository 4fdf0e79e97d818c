"""ArchiveSource: an archive's bytes, from a file or from a stream read once (``-``: stdin).

A file is opened by whichever reader needs it: format detection, the ``.sha256`` sidecar's
hash, zip's central directory, the decompressor. A stream (a pipe from ``ssh`` or ``curl``, a
socket, an HTTP response) can be read only once, front to back, so that a Pi can unpack an
archive it never stores: its first bytes are read here to tell the format and handed back
ahead of the rest, its SHA-256 is computed as it passes, it has no sidecars and no size known
in advance (unless it is a regular file: ``< app.tar.zst``), and a zip, whose directory is at
its end, cannot come from one.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from typing import IO, cast

from .._errors import SourceError, UnsupportedFormatError
from .._formats import HEAD_SIZE, CompressionFormat


class ArchiveSource:
    """Where an archive is read from: ``path`` for a file, else a stream (``path`` None)."""

    def __init__(self, archive: str | IO[bytes]) -> None:
        self._stream: IO[bytes] | None = None
        self._reader: _Replay | None = None
        self._size: int | None = None
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
        if self.fmt is CompressionFormat.ZIP:
            raise UnsupportedFormatError(
                f"{self.name} is a zip, which cannot be read from a stream (its directory is "
                "at its end): save it to a file first"
            )
        self._stream = archive

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


def _read_fully(stream: IO[bytes], n: int, name: str) -> bytes:
    """Up to ``n`` bytes: fewer only at the end (a pipe's read() returns what it has)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = stream.read(n - got)
        except OSError as exc:
            raise SourceError(f"cannot read {name}: {exc.strerror or exc}", name) from exc
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
