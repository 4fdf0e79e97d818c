"""Columns: rows of integer fields appended one at a time, kept zlib-compressed in blocks.

The tables that hold a row per member (create's collected entries, ``list``'s result) would
cost ~200-500 bytes a member as a list of objects (an object, its int and str objects and a
pointer each). Here each field is a column (an ``array``) of BLOCK rows; a full block is
packed, column after column, and compressed with zlib. Neighbouring members share most of
their values, so a row costs a few bytes (about 3 for create's table on a million empty
files). Iteration decompresses one block at a time; indexing decompresses the row's block
(the last one is cached). NameList does the same for names; no library offers either.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterator, Sequence
from typing import TypeVar, overload

T = TypeVar("T")
BLOCK = 256  # rows per compressed block
_LEVEL = 1  # these columns compress nearly as well at level 1, several times faster than at 6


class Columns:
    """Rows of ``len(typecodes)`` integers, each field stored with its ``array`` typecode once
    its block is full (a value out of the typecode's range raises OverflowError then)."""

    __slots__ = ("_blocks", "_cached", "_open", "_typecodes")

    def __init__(self, typecodes: str) -> None:
        self._typecodes = typecodes
        self._open: list[tuple[int, ...]] = []  # the newest rows, not yet a full block
        self._blocks: list[bytes] = []  # full blocks, columns one after the other, compressed
        self._cached: tuple[int, list[tuple[int, ...]]] = (-1, [])

    def append(self, row: tuple[int, ...]) -> None:
        """Add a row (a tuple: appending it is the cheapest step of the create walk's loop)."""
        self._open.append(row)
        if len(self._open) == BLOCK:
            columns = [array(code, values) for code, values in zip(
                self._typecodes, zip(*self._open, strict=True), strict=True
            )]
            self._blocks.append(zlib.compress(b"".join(c.tobytes() for c in columns), _LEVEL))
            self._open = []

    def __len__(self) -> int:
        return len(self._blocks) * BLOCK + len(self._open)

    def _block(self, b: int) -> list[tuple[int, ...]]:
        if b == len(self._blocks):
            return self._open[:]
        if self._cached[0] == b:
            return self._cached[1]
        packed = zlib.decompress(self._blocks[b])
        columns = [array(code) for code in self._typecodes]
        start = 0
        for column in columns:
            end = start + column.itemsize * BLOCK
            column.frombytes(packed[start:end])
            start = end
        rows = list(zip(*columns, strict=True))
        self._cached = (b, rows)
        return rows

    def row(self, index: int) -> tuple[int, ...]:
        """The row at ``index`` (0 <= index < len(self))."""
        b, i = divmod(index, BLOCK)
        return (self._open if b == len(self._blocks) else self._block(b))[i]

    def __iter__(self) -> Iterator[tuple[int, ...]]:
        for b in range(len(self._blocks)):
            yield from self._block(b)
        yield from self._block(len(self._blocks))  # a copy: appending while iterating is safe


class CompactSequence(Sequence[T]):
    """What the compact results (NameList, EntryList) share as sequences: indexing with
    negative indices and slices (a slice is a list), equality with any sequence of the same
    items (a list, a tuple), no hash (they grow, like a list) and a short repr. A subclass
    gives ``__len__``, ``__iter__`` and ``_item`` (an index already in range)."""

    __slots__ = ()
    _SHOWN = 3  # items in the repr

    def _item(self, index: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._item(index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(
                a == b for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        shown = ", ".join(repr(item) for item in self[: self._SHOWN])
        more = f", ... ({len(self)} in all)" if len(self) > self._SHOWN else ""
        return f"{type(self).__name__}([{shown}{more}])"
