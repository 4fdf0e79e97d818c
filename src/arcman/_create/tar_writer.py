"""TarWriter: emits tar records in collection order, then the manifest and the end marker.

Headers are POSIX pax (plain ustar where the member fits, built by headers.py; pax records
for long or non-ASCII names and large values), readable by GNU tar, bsdtar and Python's
tarfile; a hard link is a link member (type 1) naming its file's first member. Owner names
are looked up once per uid/gid rather than once per member. A batch of small files may come
as finished records and manifest lines (read.Records), written whole.
"""

from __future__ import annotations

import grp
import pwd
import tarfile

from .._manifest import DIR, FILE, HARDLINK, MANIFEST_NAME, TAR_MANIFEST_MARK, ManifestWriter
from .collect import SourceEntry
from .compress import Sink
from .headers import BLOCK, DIRTYPE, LNKTYPE, PADDING, REGTYPE, SYMTYPE, ustar_header
from .read import Content, LargeFile, Loaded, Records

RECORD = 20 * BLOCK
# Records are gathered into writes of about this size: one sink call per member (header, data,
# padding: three) cost more than the zstd compression of a small file did.
COALESCE = 1024 * 1024
_TYPES = {FILE: REGTYPE, DIR: DIRTYPE, HARDLINK: LNKTYPE}


class _OwnerNames:
    """The (user, group) names a header holds for a (uid, gid), looked up once per pair; ""
    for an id with no name here."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], tuple[str, str]] = {}

    def __call__(self, uid: int, gid: int) -> tuple[str, str]:
        names = self._known.get((uid, gid))
        if names is None:
            try:
                user = pwd.getpwuid(uid).pw_name
            except KeyError:
                user = ""
            try:
                group = grp.getgrgid(gid).gr_name
            except KeyError:
                group = ""
            names = self._known[uid, gid] = (user, group)
        return names


def _no_names(uid: int, gid: int) -> tuple[str, str]:
    return "", ""


def _header(
    name: str, type_: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: str, uname: str, gname: str,
) -> bytes:
    """The member's header: the lean ustar block when it fits, tarfile's pax sequence if not."""
    if type_ == DIRTYPE and not name.endswith("/"):
        name += "/"  # as tarfile does
    fast = ustar_header(name, type_, mode, uid, gid, size, mtime, linkname, uname, gname)
    if fast is not None:
        return fast
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = type_, size, mode, mtime
    info.uid, info.gid, info.uname, info.gname = uid, gid, uname, gname
    info.linkname = linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    def __init__(self, sink: Sink, *, owner_names: bool = True) -> None:
        """``owner_names=False`` leaves uname/gname empty: uid 0 is "root" everywhere, but gid 0
        is "root" on Linux and "wheel" on macOS, which would break reproducible archives."""
        self._sink = sink
        self.owner_names = _OwnerNames() if owner_names else _no_names
        self.manifest = ManifestWriter()
        self.written = 0
        self._parts: list[bytes] = []
        self._held = 0
        self._max_mtime = 0
        self._emit(tarfile.TarInfo.create_pax_global_header({TAR_MANIFEST_MARK: "1"}))

    def _header(self, entry: SourceEntry, size: int) -> bytes:
        return _header(
            entry.path, _TYPES.get(entry.kind, SYMTYPE), entry.mode, entry.uid,
            entry.gid, size, entry.mtime, entry.target or "",
            *self.owner_names(entry.uid, entry.gid),
        )

    def add_records(self, records: Records) -> int:
        """Write a batch of small files made into records already; return its content bytes."""
        entries = records.entries
        self._max_mtime = max(self._max_mtime, max(entry.mtime for entry in entries))
        size = sum(entry.size for entry in entries)
        self.manifest.add_lines(records.lines, len(entries), size)
        self._emit(records.data)
        return size

    def _emit(self, data: bytes) -> None:
        self._parts.append(data)
        self._held += len(data)
        self.written += len(data)
        if self._held >= COALESCE:
            self._flush()

    def _flush(self) -> None:
        if self._parts:
            self._sink.writelines(self._parts)
            self._parts.clear()
            self._held = 0

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._emit(PADDING[size % BLOCK])

    def add(self, entry: SourceEntry, content: Content) -> int:
        """Write one member; return the number of content bytes written."""
        if entry.mtime > self._max_mtime:
            self._max_mtime = entry.mtime
        digest: str | None = None
        if isinstance(content, Loaded):
            # The common member, in one step: header, data and padding.
            data = content.data
            header = self._header(entry, len(data))
            padding = PADDING[len(data) % BLOCK]
            self._parts += (header, data, padding)
            size = len(header) + len(data) + len(padding)
            self._held += size
            self.written += size
            if self._held >= COALESCE:
                self._flush()
            digest = content.sha256
        elif isinstance(content, LargeFile):
            self._emit(self._header(entry, entry.size))
            for chunk in content.chunks():
                self._emit(chunk)
            self._pad(entry.size)
            digest = content.sha256
        else:
            self._emit(self._header(entry, 0))
        self.manifest.add(
            entry.path, entry.kind, entry.size, entry.mode, entry.mtime, digest, entry.target
        )
        return entry.size if digest is not None else 0

    def close(self) -> None:
        """Append the manifest member and the end-of-archive marker, padded to a full record."""
        data, length = self.manifest.finish()
        try:
            self._emit(
                _header(MANIFEST_NAME, REGTYPE, 0o644, 0, 0, length, self._max_mtime,
                        "", "", "")
            )
            while chunk := data.read(1024 * 1024):
                self._emit(chunk)
            self._pad(length)
        finally:
            self.manifest.close()
        self._emit(b"\0" * (2 * BLOCK))
        if self.written % RECORD:
            self._emit(b"\0" * (RECORD - self.written % RECORD))
        self._flush()
        self._sink.close()
