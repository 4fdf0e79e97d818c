"""NameList: member names kept compressed in blocks, for results that list every member.

A list of a million ``str`` costs ~90 MB (an object, a header and a pointer per name), and even
packed as UTF-8 a million paths cost ~30 MB. Names in archive order share long prefixes, so
they are kept in blocks of BLOCK names, each block's UTF-8 bytes and lengths compressed with
zlib (a few bytes a name for a typical tree). The newest block stays uncompressed until it is
full. No library offers a compact, appendable sequence of strings, hence this small class.
Iteration decompresses one block at a time; indexing decompresses the name's block (the last
one is cached). Names round-trip exactly, undecodable bytes included (surrogateescape).
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Iterator

from ._columns import CompactSequence

BLOCK = 256
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
_LEVEL = 1  # names compress nearly as well at level 1, several times faster than at 6


class NameList(CompactSequence[str]):
    __slots__ = ("_blocks", "_cached", "_count", "_nbytes", "_open")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._blocks: list[tuple[bytes, bytes]] = []  # (lengths, data), both compressed
        self._open: list[str] = []  # the newest names, not yet a full block
        self._count = 0
        self._nbytes = 0
        self._cached: tuple[int, list[str]] = (-1, [])
        for name in names:
            self.append(name)

    def append(self, name: str) -> None:
        self._open.append(name)
        self._count += 1
        if len(self._open) == BLOCK:
            encoded = [n.encode(_ENCODING, _ERRORS) for n in self._open]
            lengths = array("I", map(len, encoded)).tobytes()
            block = (zlib.compress(lengths, _LEVEL), zlib.compress(b"".join(encoded), _LEVEL))
            self._blocks.append(block)
            self._nbytes += len(block[0]) + len(block[1])
            self._open = []

    def _block(self, b: int) -> list[str]:
        if b == len(self._blocks):
            return self._open
        if self._cached[0] == b:
            return self._cached[1]
        packed_lengths, packed_data = self._blocks[b]
        lengths = array("I")
        lengths.frombytes(zlib.decompress(packed_lengths))
        data = zlib.decompress(packed_data)
        names, start = [], 0
        for length in lengths:
            names.append(data[start : start + length].decode(_ENCODING, _ERRORS))
            start += length
        self._cached = (b, names)
        return names

    def __len__(self) -> int:
        return self._count

    def _item(self, index: int) -> str:
        return self._block(index // BLOCK)[index % BLOCK]

    def __iter__(self) -> Iterator[str]:
        for b in range(len(self._blocks)):
            yield from self._block(b)
        yield from self._open[:]  # a copy: appending while iterating must not extend it

    def nbytes(self) -> int:
        """Bytes held by the compressed blocks (not counting the newest, open block)."""
        return self._nbytes
