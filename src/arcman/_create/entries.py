"""SourceEntry, and EntryTable: the collected entries in archive order, kept compact.

A SourceEntry object per member costs ~200 bytes (the object, its path str and int objects),
so a list of them for a million-file tree outgrows the memory budget on its own. The table
keeps names in a NameList and the other fields (kind and mode, size, mtime, owner) in
compressed Columns: a row costs a few bytes (about 3 on a million empty files). Iterating the
table hands out one transient SourceEntry at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .._columns import Columns
from .._manifest import DIR, FILE, HARDLINK, SYMLINK
from .._names import NameList

_KINDS = (FILE, DIR, SYMLINK, HARDLINK)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_MODE_BITS = 12  # stat.S_IMODE fits in 12 bits; the kind's code goes above them
_COLUMNS = "HQqII"  # kind and mode, size, mtime, owner index, change stamp


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
    # change_stamp when collected (link_stamp for a hard link): reading checks that the file
    # is still that one
    stamp: int = 0


class EntryTable:
    """Appendable, iterable rows of entries; ``names`` is the members' NameList."""

    __slots__ = ("_owner_ids", "_rows", "_targets", "names", "total_bytes")

    def __init__(self) -> None:
        self.names = NameList()
        self._rows = Columns(_COLUMNS)
        # (uid, gid) pairs repeat across a tree: a row holds the index of its pair.
        self._owner_ids: dict[tuple[int, int], int] = {}
        self._targets: dict[int, str] = {}  # links only, by row
        self.total_bytes = 0

    def add(
        self, path: str, kind: str, size: int, mode: int, mtime: int, uid: int, gid: int,
        target: str | None, stamp: int = 0,
    ) -> None:
        if target is not None:
            self._targets[len(self._rows)] = target
        self.names.append(path)
        owner = self._owner_ids.setdefault((uid, gid), len(self._owner_ids))
        self._rows.append((_KIND_CODES[kind] << _MODE_BITS | mode, size, mtime, owner, stamp))
        self.total_bytes += size

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[SourceEntry]:
        owners = list(self._owner_ids)
        targets = self._targets
        mask = (1 << _MODE_BITS) - 1
        rows = zip(self.names, self._rows, strict=True)
        for i, (path, (kind_mode, size, mtime, owner, stamp)) in enumerate(rows):
            uid, gid = owners[owner]
            yield SourceEntry(path, _KINDS[kind_mode >> _MODE_BITS], size, kind_mode & mask,
                              mtime, uid, gid, targets.get(i), stamp)
