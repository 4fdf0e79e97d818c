"""The manifest: arcman's per-member SHA-256 record, stored as the archive's last member.

Encoding (version 1) is JSON Lines in UTF-8, so it can be written while the archive streams and
read without loading a DOM of the whole tree:

    {"arcman_manifest": 1, "algorithm": "sha256"}
    {"path": "bin/run.sh", "type": "file", "size": 120, "mode": 493, "mtime": 1700000000,
     "sha256": "<64 hex digits>"}
    {"path": "bin", "type": "dir", "mode": 493, "mtime": 1700000000}
    {"path": "bin/latest", "type": "symlink", "target": "run.sh", "mode": 511, "mtime": ...}
    {"path": "bin/start.sh", "type": "hardlink", "mode": 493, "mtime": ..., "target": "bin/run.sh"}
    {"end": true, "count": 4, "size": 120}

The closing line guards against a cut-off manifest. Paths are POSIX and relative, one entry per
member in archive order: readers compare the two in lockstep. A hard link names an earlier
file entry as its target and has no content (no size, no digest) of its own.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from ._errors import IntegrityError
from ._manifest_line import DIR as DIR
from ._manifest_line import FILE as FILE
from ._manifest_line import HARDLINK as HARDLINK
from ._manifest_line import KINDS as KINDS
from ._manifest_line import SYMLINK as SYMLINK
from ._manifest_line import entry_line as entry_line

MANIFEST_NAME = ".arcman-manifest.jsonl"
# A pax global-header keyword at the start of every arcman tar: it says a manifest follows, so
# damage that cuts or zeroes the tail (manifest included) cannot pass for a manifest-less tar.
TAR_MANIFEST_MARK = "ARCMAN.manifest"
ZIP_MANIFEST_MARK = b"arcman-manifest:1"  # the zip archive comment, for the same purpose
MANIFEST_VERSION = 1
_SPOOL_IN_MEMORY = 1024 * 1024


def reproducible_mode(kind: str, mode: int) -> int:
    """The mode a reproducible archive stores: only "directory or executable" is kept, so a
    checkout's umask and group/other bits do not change the archive's bytes."""
    if kind == DIR or (kind in (FILE, HARDLINK) and mode & 0o111):
        return 0o755
    return 0o644 if kind in (FILE, HARDLINK) else 0o777


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    sha256: str | None = None
    target: str | None = None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_BATCH = 512

HEADER_LINE = _ENCODER.encode({"arcman_manifest": MANIFEST_VERSION, "algorithm": "sha256"}) + "\n"


def closing_line(count: int, size: int) -> str:
    """The manifest's last line: its entry count and the files' total size."""
    return _ENCODER.encode({"end": True, "count": count, "size": size}) + "\n"


class ManifestWriter:
    """Collects entries as members are written; spills to disk past 1 MiB so memory stays flat."""

    def __init__(self) -> None:
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by close()
            max_size=_SPOOL_IN_MEMORY
        )
        self._lines: list[str] = [HEADER_LINE]
        self._count = 0
        self._size = 0
        self._spilled = 0  # the count when the lines held were last spilled

    def _spill(self) -> None:
        self._spool.write("".join(self._lines).encode("utf-8", "surrogateescape"))
        self._lines.clear()
        self._spilled = self._count

    def add(
        self, path: str, kind: str, size: int, mode: int, mtime: int,
        sha256: str | None = None, target: str | None = None,
    ) -> None:
        """Record one member; lines are encoded in batches."""
        self._count += 1
        if kind == FILE:
            self._size += size
        self._lines.append(entry_line(path, kind, size, mode, mtime, sha256, target))
        if self._count - self._spilled >= _BATCH:
            self._spill()

    def add_lines(self, lines: str, count: int, size: int) -> None:
        """Record ``count`` members at once from their lines (entry_line's, joined), whose
        files hold ``size`` bytes."""
        self._count += count
        self._size += size
        self._lines.append(lines)
        if self._count - self._spilled >= _BATCH:
            self._spill()

    def finish(self) -> tuple[IO[bytes], int]:
        """Close the manifest; return a readable file positioned at 0 and its length."""
        self._lines.append(closing_line(self._count, self._size))
        self._spill()
        length = self._spool.tell()
        self._spool.seek(0)
        return self._spool, length

    def close(self) -> None:
        self._spool.close()


# Reading spools less in memory than writing: an archive's manifest is read while the member
# records and the name list are held too.
_READ_SPOOL_IN_MEMORY = 1024 * 1024


# A line holds a path and a link target of at most 4 KiB each (longer ones are refused), which
# JSON escapes to 6 bytes a byte at most: a longer line is not read whole.
MAX_LINE = 64 * 1024


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    for line in iter(lambda: source.readline(MAX_LINE + 1), b""):
        if len(line) > MAX_LINE:
            raise IntegrityError(f"manifest is malformed: a line is over {MAX_LINE} bytes")
        yield line


def read_manifest(source: IO[bytes]) -> Iterator[ManifestEntry]:
    """Decode a manifest's lines into entries, one at a time: a million-entry manifest is
    never held whole, nor is an endless line. Any deviation from the format is an
    IntegrityError, raised where it is met; the closing line and count after the last entry."""
    count = 0
    try:
        lines = _lines(source)
        header = json.loads(_text(next(lines)))
        if not isinstance(header, dict):
            raise TypeError("its first line is not a JSON object")
        if header.get("arcman_manifest") != MANIFEST_VERSION:
            raise IntegrityError(f"unsupported manifest version in {MANIFEST_NAME}")
        last = next(lines, None)
        for line in lines:
            assert last is not None
            entry = _entry(json.loads(_text(last)))
            count += 1
            yield entry
            last = line
        trailer = json.loads(_text(last)) if last is not None else None
        if not isinstance(trailer, dict) or trailer.get("end") is not True:
            raise IntegrityError("manifest is truncated: its closing line is missing")
    except IntegrityError:
        raise
    except (ValueError, KeyError, TypeError, StopIteration, RecursionError) as exc:
        raise IntegrityError(f"manifest is malformed: {str(exc) or 'empty'}") from exc
    if trailer.get("count") != count:
        raise IntegrityError(
            f"manifest is inconsistent: it says {trailer.get('count')} entries, has {count}"
        )


def _text(line: bytes) -> str:
    return line.decode("utf-8", "surrogateescape")


class SpooledManifest:
    """A manifest member as read from an archive: spooled (in memory up to 1 MiB, then on
    disk) and decoded as a stream of entries, as often as needed, one pass at a time."""

    def __init__(self) -> None:
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - see close()
            max_size=_READ_SPOOL_IN_MEMORY
        )

    def write(self, data: bytes | memoryview) -> None:
        self._spool.write(data)

    def __iter__(self) -> Iterator[ManifestEntry]:
        return read_manifest(self.raw())

    def raw(self) -> IO[bytes]:
        """The manifest's bytes, from the first (one pass at a time)."""
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        self._spool.close()


def _entry(obj: Any) -> ManifestEntry:
    if not isinstance(obj, dict):
        raise TypeError("manifest line is not an object")
    kind = obj["type"]
    if kind not in KINDS:
        raise ValueError(f"unknown member type {kind!r}")
    path, mode, mtime = obj["path"], obj["mode"], obj["mtime"]
    size = obj["size"] if kind == FILE else 0
    digest = obj.get("sha256")
    target = obj.get("target")
    if not isinstance(path, str) or not all(isinstance(v, int) for v in (mode, mtime, size)):
        raise TypeError(f"bad field types for {path!r}")
    if kind == FILE and (not isinstance(digest, str) or len(digest) != 64):
        raise ValueError(f"missing or bad sha256 for {path!r}")
    if kind in (SYMLINK, HARDLINK) and not isinstance(target, str):
        raise ValueError(f"missing {kind} target for {path!r}")
    return ManifestEntry(path, kind, size, mode, mtime, digest, target)

