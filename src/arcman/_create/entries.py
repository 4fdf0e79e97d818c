"""SourceEntry, and EntryTable: the collected entries in archive order, compressed in blocks.

A SourceEntry object per member costs ~200 bytes (the object, its path str and int objects),
so a list of them for a million-file tree outgrows the memory budget on its own. The table
keeps names in a NameList and the other fields in columns (kind and mode, size, mtime, owner)
that are zlib-compressed per block of rows, as NameList does with names: neighbouring entries
share most of their values, so a row costs a few bytes (about 3 on a million empty files).
Iterating the table hands out one transient SourceEntry at a time.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from .._manifest import DIR, FILE, SYMLINK
from .._names import NameList

_KINDS = (FILE, DIR, SYMLINK)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_MODE_BITS = 12  # stat.S_IMODE fits in 12 bits; the kind's code goes above them
ROWS = 256  # rows per compressed block
_LEVEL = 1


@dataclass(slots=True)
class SourceEntry:
    """One member-to-be. ``path`` is its archive name (POSIX, relative to the source root)."""

    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    uid: int
    gid: int
    target: str | None = None


class EntryTable:
    """Appendable, iterable rows of entries; ``names`` is the members' NameList."""

    __slots__ = ("_blocks", "_columns", "_owner_ids", "_targets", "names", "total_bytes")

    def __init__(self) -> None:
        self.names = NameList()
        self._columns = _open_columns()  # the newest rows, not yet a full block
        self._blocks: list[bytes] = []  # full blocks, columns one after the other, compressed
        # (uid, gid) pairs repeat across a tree: a row holds the index of its pair.
        self._owner_ids: dict[tuple[int, int], int] = {}
        self._targets: dict[int, str] = {}  # symlinks only, by row
        self.total_bytes = 0

    def add(
        self, path: str, kind: str, size: int, mode: int, mtime: int, uid: int, gid: int,
        target: str | None,
    ) -> None:
        if target is not None:
            self._targets[len(self)] = target
        self.names.append(path)
        kind_modes, sizes, mtimes, owners = self._columns
        kind_modes.append(_KIND_CODES[kind] << _MODE_BITS | mode)
        sizes.append(size)
        mtimes.append(mtime)
        owners.append(self._owner_ids.setdefault((uid, gid), len(self._owner_ids)))
        self.total_bytes += size
        if len(sizes) == ROWS:
            packed = b"".join(column.tobytes() for column in self._columns)
            self._blocks.append(zlib.compress(packed, _LEVEL))
            self._columns = _open_columns()

    def __len__(self) -> int:
        return len(self._blocks) * ROWS + len(self._columns[1])

    def _rows(self) -> Iterator[tuple[int, int, int, int]]:
        for block in self._blocks:
            packed = zlib.decompress(block)
            columns = _open_columns()
            start = 0
            for column in columns:
                end = start + column.itemsize * ROWS
                column.frombytes(packed[start:end])
                start = end
            yield from zip(*columns, strict=True)
        yield from zip(*(column[:] for column in self._columns), strict=True)

    def __iter__(self) -> Iterator[SourceEntry]:
        owners = list(self._owner_ids)
        targets = self._targets
        mask = (1 << _MODE_BITS) - 1
        rows = zip(self.names, self._rows(), strict=True)
        for i, (path, (kind_mode, size, mtime, owner)) in enumerate(rows):
            uid, gid = owners[owner]
            yield SourceEntry(path, _KINDS[kind_mode >> _MODE_BITS], size, kind_mode & mask,
                              mtime, uid, gid, targets.get(i))


def _open_columns() -> tuple[array[int], array[int], array[int], array[int]]:
    """Empty columns: kind and mode, size, mtime, owner index."""
    return array("H"), array("Q"), array("q"), array("I")
