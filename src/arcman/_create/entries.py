"""SourceEntry, and EntryTable: the collected entries in archive order, packed in columns.

A SourceEntry object per member costs ~200 bytes (the object, its path str and int objects),
so a list of them for a million-file tree outgrows the memory budget on its own. The table
stores a member as its name in a NameList (a few bytes, compressed) and 12 bytes of columns: sizes
and mtimes take 4 bytes each until a value needs 8 (a file of 4 GiB, a time before 1970), and
the column is widened then. Iterating the table hands out one transient SourceEntry at a time.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from .._manifest import DIR, FILE, SYMLINK
from .._names import NameList

_KINDS = (FILE, DIR, SYMLINK)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_MODE_BITS = 12  # stat.S_IMODE fits in 12 bits; the kind's code goes above them


def _widened(column: array[int], typecode: str, value: int) -> array[int]:
    """``column`` with ``value`` appended, in the wider type it did not fit."""
    wide = array(typecode, column)
    wide.append(value)
    return wide


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
    """Appendable, iterable columns of entries; ``names`` is the members' NameList."""

    __slots__ = ("_kind_modes", "_mtimes", "_owner_ids", "_owners", "_sizes", "_targets",
                 "names", "total_bytes")

    def __init__(self) -> None:
        self.names = NameList()
        self._kind_modes = array("H")
        self._sizes = array("I")
        self._mtimes = array("I")
        # (uid, gid) pairs repeat across a tree: a row holds the index of its pair.
        self._owner_ids: dict[tuple[int, int], int] = {}
        self._owners = array("H")
        self._targets: dict[int, str] = {}  # symlinks only, by row
        self.total_bytes = 0

    def add(
        self, path: str, kind: str, size: int, mode: int, mtime: int, uid: int, gid: int,
        target: str | None,
    ) -> None:
        if target is not None:
            self._targets[len(self._sizes)] = target
        self.names.append(path)
        self._kind_modes.append(_KIND_CODES[kind] << _MODE_BITS | mode)
        try:
            self._sizes.append(size)
        except OverflowError:
            self._sizes = _widened(self._sizes, "Q", size)
        try:
            self._mtimes.append(mtime)
        except OverflowError:
            self._mtimes = _widened(self._mtimes, "q", mtime)
        owner = self._owner_ids.setdefault((uid, gid), len(self._owner_ids))
        try:
            self._owners.append(owner)
        except OverflowError:
            self._owners = _widened(self._owners, "I", owner)
        self.total_bytes += size

    def __len__(self) -> int:
        return len(self._sizes)

    def __iter__(self) -> Iterator[SourceEntry]:
        owners = list(self._owner_ids)
        targets = self._targets
        mask = (1 << _MODE_BITS) - 1
        rows = zip(self.names, self._kind_modes, self._sizes, self._mtimes, self._owners,
                   strict=True)
        for i, (path, kind_mode, size, mtime, owner) in enumerate(rows):
            uid, gid = owners[owner]
            yield SourceEntry(path, _KINDS[kind_mode >> _MODE_BITS], size, kind_mode & mask,
                              mtime, uid, gid, targets.get(i))
