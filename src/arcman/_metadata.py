"""ArchiveMetadata: what an operation produced, as a JSON-friendly record."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._formats import CompressionFormat

_NAMES_PER_CHUNK = 4096


def utc_timestamp(epoch: float | None = None) -> str:
    """``epoch`` (default: now) as ISO 8601 in UTC to the second, as datetime's
    ``isoformat(timespec="seconds")`` writes it, without importing datetime (~1.2 ms)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(epoch))


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
        return self._record(list(self.files))

    def _record(self, files: list[str] | None) -> dict[str, Any]:
        # dataclasses.asdict deep-copies every string of ``files``: ~20 us a member.
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(format=self.format.value, files=files, skipped=list(self.skipped),
                    timings=dict(self.timings))
        return data

    def json_chunks(self) -> Iterator[str]:
        """``json.dumps(self.to_dict(), indent=2)`` in pieces, for the ``.meta`` sidecar: the
        names of a million-member archive are never one list or one string in memory."""
        quote = json.JSONEncoder().encode
        separator = "{\n  "
        for key, value in self._record(None).items():
            yield f"{separator}{quote(key)}: "
            separator = ",\n  "
            if key != "files":
                # Nested one level deeper; JSON text holds no raw newline but these.
                yield json.dumps(value, indent=2).replace("\n", "\n  ")
                continue
            names = iter(self.files)
            empty = True
            while chunk := list(itertools.islice(names, _NAMES_PER_CHUNK)):
                yield ("[\n    " if empty else ",\n    ") + ",\n    ".join(map(quote, chunk))
                empty = False
            yield "[]" if empty else "\n  ]"
        yield "\n}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchiveMetadata:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ArchiveMetadata fields: {sorted(unknown)}")
        values = dict(data)
        values["format"] = CompressionFormat(values["format"])
        return cls(**values)


@dataclass(frozen=True)
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
