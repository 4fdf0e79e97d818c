"""SparseData: a GNU sparse member's content (``tar --sparse``), holes and all.

GNU tar stores a sparse file (a disk image, a database file) as its data chunks only, with a
map of where each goes in the file: in old GNU headers, or in pax records of format 0.0, 0.1
or 1.0; tarfile reads all four into ``TarInfo.sparse`` and the file's real size. ``read(n)``
hands the file out in order: a chunk's bytes from the tar stream, and a hole as a view of
HOLE, which the staging tree seeks over instead of writing, so that a hole stays a hole on
disk, as GNU tar and bsdtar leave it (a member small enough to be written in one piece gets
its zeros written). The map is checked before a byte is handed out: chunks in order, apart,
inside the file, and together exactly the data the archive stores for the member.
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import CorruptArchiveError
from .ustar import BLOCK

HOLE = memoryview(bytes(1024 * 1024))  # read-only zeros, shared by every hole


def is_hole(data: bytes | memoryview) -> bool:
    """Whether ``data`` is (part of) a hole: zeros that need not be written."""
    return isinstance(data, memoryview) and data.obj is HOLE.obj


class SparseData:
    def __init__(
        self, name: str, read: Callable[[int], bytes | memoryview], sparse: list[tuple[int, int]],
        size: int, stored: int,
    ) -> None:
        """``read`` takes the member's stored bytes from the stream; ``sparse`` is the map as
        tarfile read it, ``size`` the file's real size and ``stored`` the length of the
        member's data in the archive (in whole blocks)."""
        # GNU tar ends the map with (size, 0); old GNU headers pad it with (0, 0).
        chunks = [(offset, length) for offset, length in sparse if length]
        end = 0
        for offset, length in chunks:
            if length < 0 or offset < end or offset + length > size:
                raise CorruptArchiveError(
                    f"damaged sparse map of {name!r}: chunk ({offset}, {length}) in a file of"
                    f" {size} bytes, after one that ends at {end}"
                )
            end = offset + length
        data = sum(length for _, length in chunks)
        if -(-data // BLOCK) * BLOCK != stored:
            raise CorruptArchiveError(
                f"damaged sparse map of {name!r}: it places {data} bytes, the archive holds"
                f" {stored}"
            )
        self._read = read
        self._chunks = chunks
        self._next = 0  # index of the first chunk not wholly handed out
        self._position = 0
        self._size = size

    def read(self, n: int) -> bytes | memoryview:
        """Up to ``n`` bytes from where the last read ended: a hole, or one chunk's bytes (a
        short read at each boundary); empty at the end of the file, or of the stream."""
        position = self._position
        if position >= self._size or n <= 0:
            return b""
        if self._next < len(self._chunks):
            offset, length = self._chunks[self._next]
            if position >= offset:  # inside the chunk
                data = self._read(min(n, offset + length - position))
                self._position += len(data)
                if self._position == offset + length:
                    self._next += 1
                return data
            hole_end = offset
        else:
            hole_end = self._size
        taken = min(n, hole_end - position, len(HOLE))
        self._position += taken
        return HOLE[:taken]
