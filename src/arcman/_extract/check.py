"""Manifest check: what the archive held, member by member, against what its manifest says.

Members are recorded as they are read, in archive order, in an ObservedLog: packed records in
a spool (in memory up to 1 MiB, then on disk), so a million members do not stay a million
objects until the manifest, the archive's last member, arrives. A record is written once its
digest is known (files are hashed by workers); only the window of members still in flight is
held in memory, and the sinks' byte budget bounds that window. The manifest lists members in
archive order, so the two are compared in lockstep; only when they disagree are both read
again, to say how.
"""

from __future__ import annotations

import itertools
import struct
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, NoReturn

from .._errors import CorruptArchiveError, IntegrityError
from .._manifest import (
    DIR,
    FILE,
    HEADER_LINE,
    SYMLINK,
    ManifestEntry,
    SpooledManifest,
    closing_line,
    entry_line,
)
from .batch import Digest
from .members import HARDLINK, SPECIAL

_KINDS = (FILE, DIR, SYMLINK, HARDLINK, SPECIAL)
_CODES = {kind: code for code, kind in enumerate(_KINDS)}
# kind code, size, mode, mtime, path length, target length + 1 (0: no target); then the path,
# the target and, for a file, its 32-byte SHA-256.
_HEAD = struct.Struct("<Bqqqii")
_DIGEST = 32
_SPOOL_IN_MEMORY = 1024 * 1024
_WRITE_BUFFER = 64 * 1024
_READ_CHUNK = 256 * 1024
_BATCH = 512  # manifest lines compared at a time
_ENCODING = ("utf-8", "surrogateescape")
# path, kind, size, mode, mtime, sha256, target: an Observed's fields
_Fields = tuple[str, str, int, int, int, str | None, str | None]


@dataclass(slots=True)
class Observed:
    """A member as read from the container."""

    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    sha256: str | None = None
    target: str | None = None


def pack_record(
    path: str, kind: str, size: int, mode: int, mtime: int, target: str | None
) -> bytes:
    """A member's record without its digest. Packed before the member is written, so a header
    number no file system takes (a base-256 mtime past 2**63) is refused up front."""
    raw = path.encode(*_ENCODING)
    link = b"" if target is None else target.encode(*_ENCODING)
    try:
        head = _HEAD.pack(
            _CODES[kind], size, mode, mtime, len(raw), 0 if target is None else len(link) + 1
        )
    except struct.error as exc:
        raise CorruptArchiveError(f"member {path!r} has a header number out of range") from exc
    return head + raw + link


class ObservedLog:
    """Every member seen, in archive order, as compact records; iterable once finish()ed."""

    def __init__(self) -> None:
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - see close()
            max_size=_SPOOL_IN_MEMORY
        )
        self._out = bytearray()
        self._pending: deque[tuple[bytes, Digest | None]] = deque()

    def add(self, record: bytes, digest: Digest | bytes | None) -> None:
        """Log a record from pack_record with a file's raw digest, which may still be due."""
        if isinstance(digest, Digest):
            self._pending.append((record, digest))
        elif self._pending:
            self._pending.append((record + digest if digest else record, None))
        else:
            self._write(record + digest if digest else record)
        self._settle()

    def _settle(self) -> None:
        """Write the records at the head of the window whose digests have come in; a failed
        one stays there for finish() to raise."""
        pending = self._pending
        while pending:
            record, digest = pending[0]
            if digest is not None:
                if not digest.ready():
                    return
                record += digest.value()
            pending.popleft()
            self._write(record)

    def _write(self, record: bytes) -> None:
        self._out += record
        if len(self._out) >= _WRITE_BUFFER:
            self._spool.write(self._out)
            self._out.clear()

    def finish(self) -> None:
        """Wait for the digests still due; a worker's failure is raised here, in archive
        order."""
        while self._pending:
            record, digest = self._pending.popleft()
            self._write(record + digest.value() if digest is not None else record)
        self._spool.write(self._out)
        self._out.clear()

    def __iter__(self) -> Iterator[Observed]:
        """The members from the first (one pass at a time)."""
        return itertools.starmap(Observed, self.fields())

    def fields(self) -> Iterator[_Fields]:
        """The members' fields, in Observed's order, without building an object for each."""
        spool, head = self._spool, _HEAD.size
        spool.seek(0)
        buf, pos = b"", 0
        while chunk := spool.read(_READ_CHUNK):
            buf, pos = buf[pos:] + chunk, 0
            while len(buf) - pos >= head:
                code, size, mode, mtime, plen, tlen = _HEAD.unpack_from(buf, pos)
                kind = _KINDS[code]
                start = pos + head
                end = start + plen + (tlen - 1 if tlen else 0) + (_DIGEST if kind == FILE else 0)
                if end > len(buf):
                    break
                link = start + plen
                digest = buf[end - _DIGEST : end].hex() if kind == FILE else None
                target = buf[link : link + tlen - 1].decode(*_ENCODING) if tlen else None
                yield buf[start:link].decode(*_ENCODING), kind, size, mode, mtime, digest, target
                pos = end

    def close(self) -> None:
        self._spool.close()


def check_against_manifest(observed: ObservedLog, manifest: SpooledManifest) -> None:
    """Raise IntegrityError naming the first member that differs from the manifest.

    An archive's manifest is usually, line for line, what ManifestWriter made of the very
    members read back: such lines are matched as text, with no JSON parsed and no entry built
    (~5.8 us a member before, most of the check's time on the critical path). At the first line
    that is not, check_entries judges the whole manifest again, the general way, which accepts
    what it accepts (another key order, other spacing, other mtimes) and says what is wrong."""
    if not _as_written(observed.fields(), manifest.raw()):
        check_entries(observed, manifest)


def _as_written(observed: Iterable[_Fields], manifest: IO[bytes]) -> bool:
    """Whether ``manifest`` holds exactly what ManifestWriter writes for ``observed``, which
    check_entries then passes: its mtimes are those the members carry, its modes their
    permission bits; kinds outside the manifest's, or a directory seen twice, are left to it.
    Lines are compared a batch at a time."""
    lines = [HEADER_LINE]
    dirs: set[str] = set()
    count = total = 0
    for path, kind, size, mode, mtime, digest, target in observed:
        if kind == FILE:
            total += size
        elif kind == DIR:
            if path in dirs:
                return False
            dirs.add(path)
        elif kind not in (SYMLINK, HARDLINK) or target is None:
            return False
        lines.append(entry_line(path, kind, size, mode & 0o7777, mtime, digest, target))
        count += 1
        if len(lines) >= _BATCH and not _next_lines_are(manifest, lines):
            return False
    lines.append(closing_line(count, total))
    return _next_lines_are(manifest, lines) and not manifest.read(1)


def _next_lines_are(manifest: IO[bytes], lines: list[str]) -> bool:
    """Whether the manifest's next lines, decoded as read_manifest decodes them, are ``lines``
    (then cleared). Only a newline byte decodes to a newline, so equal text is the same lines."""
    text = "".join(lines)
    lines.clear()
    return manifest.read(len(text.encode(*_ENCODING))).decode(*_ENCODING) == text


def check_entries(observed: Iterable[Observed], manifest: Iterable[ManifestEntry]) -> None:
    """Raise IntegrityError naming the first member that differs from the manifest. Both are
    in archive order and may be iterated again (by _misplaced) to explain a mismatch."""
    dirs: set[str] = set()  # a repeated directory is the one duplicate the guard lets through
    for member, entry in itertools.zip_longest(observed, manifest):
        if member is None:
            raise _missing(entry.path)
        if entry is None or entry.path != member.path:
            _misplaced(member, entry, observed, manifest)
        if entry.kind == DIR:
            if entry.path in dirs:
                raise IntegrityError("manifest lists a path twice", entry.path)
            dirs.add(entry.path)
        _compare(member, entry)


def _missing(path: str) -> IntegrityError:
    return IntegrityError(f"{path!r} is in the manifest but not in the archive", path)


def _misplaced(
    member: Observed,
    entry: ManifestEntry | None,
    observed: Iterable[Observed],
    manifest: Iterable[ManifestEntry],
) -> NoReturn:
    """Say why ``member`` is not where the manifest has ``entry`` (None: past its end)."""
    if not any(e.path == member.path for e in manifest):
        raise IntegrityError(f"{member.path!r} is not in the manifest", member.path)
    if entry is not None:
        if not any(o.path == entry.path for o in observed):
            raise _missing(entry.path)
        if sum(e.path == entry.path for e in manifest) > 1:
            raise IntegrityError("manifest lists a path twice", entry.path)
    raise IntegrityError(f"{member.path!r} is out of the manifest's order", member.path)


def _compare(member: Observed, entry: ManifestEntry) -> None:
    if entry.kind != member.kind:
        raise IntegrityError(
            f"{member.path!r} is a {member.kind}, the manifest says {entry.kind}", member.path
        )
    if member.kind != SYMLINK and member.mode & 0o7777 != entry.mode:
        raise IntegrityError(
            f"{member.path!r} has mode {member.mode & 0o7777:o}, the manifest says "
            f"{entry.mode:o}",
            member.path,
        )
    if member.kind == FILE:
        if member.size != entry.size:
            raise IntegrityError(
                f"{member.path!r} has {member.size} bytes, the manifest says {entry.size}",
                member.path,
            )
        if member.sha256 != entry.sha256:
            raise IntegrityError(f"{member.path!r} fails its SHA-256 check", member.path)
    elif member.kind in (SYMLINK, HARDLINK) and member.target != entry.target:
        raise IntegrityError(
            f"{member.path!r} points elsewhere than its manifest says", member.path
        )
