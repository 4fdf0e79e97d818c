"""NameList: member names packed into one buffer, for results that list every member.

A list of a million ``str`` costs ~90 MB (an object, a header and a pointer per name); packed as
UTF-8 in one bytearray with an array of end offsets it costs the names' bytes plus 8 bytes
each. No library offers a compact, appendable sequence of strings, hence this small class.
Names round-trip exactly, undecodable bytes included (surrogateescape).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


class NameList(Sequence[str]):
    __slots__ = ("_data", "_ends")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._data = bytearray()
        self._ends = array("Q")
        for name in names:
            self.append(name)

    def append(self, name: str) -> None:
        self._data += name.encode(_ENCODING, _ERRORS)
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._name(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("NameList index out of range")
        return self._name(index)

    def _name(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._data[start : self._ends[i]].decode(_ENCODING, _ERRORS)

    def __iter__(self) -> Iterator[str]:
        data, start = self._data, 0
        for end in self._ends:
            yield data[start:end].decode(_ENCODING, _ERRORS)
            start = end

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same names (a list, a tuple, another NameList)."""
        if isinstance(other, NameList):
            return self._ends == other._ends and self._data == other._data
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        shown = ", ".join(repr(n) for n in self[:3])
        more = f", ... ({len(self)} names)" if len(self) > 3 else ""
        return f"NameList([{shown}{more}])"

    def nbytes(self) -> int:
        """Memory held by the packed names and offsets (buffers only)."""
        return len(self._data) + self._ends.itemsize * len(self._ends)
