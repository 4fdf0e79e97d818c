"""ArchiveMetadata: what an operation produced, as a JSON-friendly record."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._columns import Columns, CompactSequence
from ._formats import CompressionFormat
from ._names import NameList

_ITEMS_PER_PIECE = 4096


def utc_timestamp(epoch: float | None = None) -> str:
    """``epoch`` (default: now) as ISO 8601 in UTC to the second, as datetime's
    ``isoformat(timespec="seconds")`` writes it, without importing datetime (~1.2 ms)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


def json_pieces(record: Mapping[str, Any], *, indent: int | None = None) -> Iterator[str]:
    """``json.dumps(record, indent=indent)`` in pieces. The record's sequences (a NameList, an
    EntryList) are encoded a few thousand items at a time, so that the result of a
    million-member operation is never one list or one string in memory; an item that is no
    JSON type is encoded as its ``to_dict()``."""
    if not record:
        yield "{}"
        return
    # What json.dumps puts between items and around nested values, by depth.
    comma, line = ", ", ["", "", ""]
    if indent is not None:
        comma, line = ",", ["\n" + " " * (indent * depth) for depth in range(3)]

    # One encoder for every item: json.dumps given arguments makes one a call (~2 us a name).
    encoder = json.JSONEncoder(indent=indent, default=_to_dict).encode

    def encode(value: Any, depth: int) -> str:
        text = encoder(value)
        return text.replace("\n", line[depth]) if indent is not None else text

    opening = "{" + line[1]
    for key, value in record.items():
        yield f"{opening}{json.dumps(key)}: "
        opening = comma + line[1]
        if not isinstance(value, Sequence) or isinstance(value, str | bytes | tuple):
            yield encode(value, 1)
            continue
        items = iter(value)
        start = "[" + line[2]
        while chunk := list(itertools.islice(items, _ITEMS_PER_PIECE)):
            yield start + (comma + line[2]).join(encode(item, 2) for item in chunk)
            start = comma + line[2]
        yield "[]" if start.startswith("[") else line[1] + "]"
    yield line[0] + "}"


def _to_dict(item: Any) -> Any:
    if hasattr(item, "to_dict"):
        return item.to_dict()
    raise TypeError(f"{type(item).__name__} is not JSON serializable")


@dataclass
class ArchiveMetadata:
    """The result of create/extract: the archive, its members and where the time went.

    ``verification`` says how contents were checked: ``"manifest"`` (every member's SHA-256),
    ``"container"`` (foreign archive: only the container's own CRCs) or ``"none"``.
    ``skipped`` lists source paths left out because ``on_error="skip"`` was asked for.
    ``files`` is a sequence of member names (a compact ``NameList`` for large archives).
    """

    filename: str
    format: CompressionFormat
    created_at: str
    file_count: int
    uncompressed_size: int
    compressed_size: int
    checksum_sha256: str
    files: Sequence[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    verification: str = "none"
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = self.shallow_dict()
        data.update(files=list(self.files), skipped=list(self.skipped), timings=dict(self.timings))
        return data

    def shallow_dict(self) -> dict[str, Any]:
        """to_dict without its copies: ``files`` is the same sequence (a NameList stays one),
        for writing out with json_pieces."""
        # dataclasses.asdict deep-copies every string of ``files``: ~20 us a member.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["format"] = self.format.value
        return data

    def json_chunks(self) -> Iterator[str]:
        """``json.dumps(self.to_dict(), indent=2)`` in pieces, for the ``.meta`` sidecar."""
        return json_pieces(self.shallow_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchiveMetadata:
        """The record ``to_dict`` made (a ``.meta`` sidecar's JSON, say); anything else is a
        ValueError naming the field: a sidecar is input like any other."""
        if not isinstance(data, Mapping):
            raise ValueError(f"ArchiveMetadata record must be a mapping, not {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f"unknown ArchiveMetadata fields: {sorted(unknown)}")
        unset = dataclasses.MISSING
        missing = [n for n, f in fields.items() if n not in data
                   and f.default is unset and f.default_factory is unset]
        if missing:
            raise ValueError(f"ArchiveMetadata record lacks {missing}")
        for name, value in data.items():
            if not _RECORD_TYPES[name](value):
                raise ValueError(f"ArchiveMetadata field {name!r} has a wrong value: {value!r:.80}")
        values = dict(data)
        values["format"] = CompressionFormat(values["format"])
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_RECORD_TYPES: dict[str, Callable[[Any], bool]] = {
    "filename": lambda v: isinstance(v, str),
    "format": lambda v: v in {f.value for f in CompressionFormat},
    "created_at": lambda v: isinstance(v, str),
    "file_count": _is_int,
    "uncompressed_size": _is_int,
    "compressed_size": _is_int,
    "checksum_sha256": lambda v: isinstance(v, str),
    "files": _is_strings,
    "timings": lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(t, int | float) and not isinstance(t, bool)
        for k, t in v.items()
    ),
    "verification": lambda v: isinstance(v, str),
    "skipped": _is_strings,
}


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One member as ``list_archive`` reports it (``sha256`` is None for non-files)."""

    name: str
    type: str
    size: int
    mode: int
    mtime: int
    sha256: str | None = None
    target: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DIGEST = 32


class EntryList(CompactSequence[ArchiveEntry]):
    """``list_archive``'s result: a sequence of ArchiveEntry, each made when it is read.

    A list of ArchiveEntry objects cost ~0.5 KiB a member (the object, its name and its hex
    digest as str), 100 MiB for 200,000 members, more than a small board can spare to list an
    archive. Here names are in a NameList, type, mode, size and mtime in Columns and digests
    as their 32 raw bytes: ~40 bytes a member. Equal to any sequence of the same entries.
    """

    __slots__ = ("_digests", "_kinds", "_names", "_rows", "_targets")
    _SHOWN = 2

    def __init__(self, entries: Iterable[ArchiveEntry] = ()) -> None:
        self._names = NameList()
        self._rows = Columns("Bqqq")  # type, size, mode, mtime: tar's header ranges
        self._kinds: dict[str, int] = {}  # type -> its code in the rows
        self._digests = bytearray()  # _DIGEST bytes a row, zeros where there is none
        self._targets: dict[int, str] = {}  # link targets, by row
        for entry in entries:
            self.append(entry)

    def append(self, entry: ArchiveEntry) -> None:
        kind = self._kinds.setdefault(entry.type, len(self._kinds))
        has_digest = entry.sha256 is not None
        if entry.target is not None:
            self._targets[len(self)] = entry.target
        self._names.append(entry.name)
        self._rows.append((kind << 1 | has_digest, entry.size, entry.mode, entry.mtime))
        self._digests += bytes.fromhex(entry.sha256) if entry.sha256 is not None else bytes(
            _DIGEST
        )

    def _entry(self, index: int, name: str, row: tuple[int, ...], kinds: list[str]) -> (
        ArchiveEntry
    ):
        code, size, mode, mtime = row
        digest = None
        if code & 1:
            digest = self._digests[index * _DIGEST : (index + 1) * _DIGEST].hex()
        return ArchiveEntry(
            name, kinds[code >> 1], size, mode, mtime, digest, self._targets.get(index)
        )

    def __len__(self) -> int:
        return len(self._names)

    def _item(self, index: int) -> ArchiveEntry:
        return self._entry(index, self._names[index], self._rows.row(index), list(self._kinds))

    def __iter__(self) -> Iterator[ArchiveEntry]:
        kinds = list(self._kinds)
        rows = zip(self._names, self._rows, strict=True)
        for index, (name, row) in enumerate(rows):
            yield self._entry(index, name, row, kinds)
