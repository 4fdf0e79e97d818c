"""TarWriter: emits tar records in collection order, then the manifest and the end marker.

Headers are POSIX pax (ustar where the member fits, pax records for long or non-ASCII names
and large values), readable by GNU tar, bsdtar and Python's tarfile. Owner names are looked up
once per uid/gid rather than once per member.
"""

from __future__ import annotations

import grp
import pwd
import tarfile

from .._manifest import DIR, FILE, MANIFEST_NAME, TAR_MANIFEST_MARK, ManifestEntry, ManifestWriter
from .collect import SourceEntry
from .compress import Sink
from .read import Content, LargeFile, Loaded

BLOCK = 512
RECORD = 20 * BLOCK
_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE}


class _OwnerNames:
    def __init__(self) -> None:
        self._users: dict[int, str] = {}
        self._groups: dict[int, str] = {}

    def user(self, uid: int) -> str:
        if uid not in self._users:
            try:
                self._users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                self._users[uid] = ""
        return self._users[uid]

    def group(self, gid: int) -> str:
        if gid not in self._groups:
            try:
                self._groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                self._groups[gid] = ""
        return self._groups[gid]


class TarWriter:
    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._names = _OwnerNames()
        self.manifest = ManifestWriter()
        self.written = 0
        self._max_mtime = 0
        self._emit(tarfile.TarInfo.create_pax_global_header({TAR_MANIFEST_MARK: "1"}))

    def _header(self, entry: SourceEntry, size: int) -> bytes:
        info = tarfile.TarInfo(entry.path)
        info.type = _TYPES.get(entry.kind, tarfile.SYMTYPE)
        info.size = size
        info.mode = entry.mode
        info.mtime = entry.mtime
        info.uid, info.gid = entry.uid, entry.gid
        info.uname, info.gname = self._names.user(entry.uid), self._names.group(entry.gid)
        if entry.target is not None:
            info.linkname = entry.target
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def _emit(self, data: bytes) -> None:
        self._sink.write(data)
        self.written += len(data)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._emit(b"\0" * (BLOCK - size % BLOCK))

    def add(self, entry: SourceEntry, content: Content) -> int:
        """Write one member; return the number of content bytes written."""
        self._max_mtime = max(self._max_mtime, entry.mtime)
        digest: str | None = None
        if isinstance(content, Loaded):
            self._emit(self._header(entry, len(content.data)))
            self._emit(content.data)
            self._pad(len(content.data))
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
            ManifestEntry(
                entry.path, entry.kind, entry.size, entry.mode, entry.mtime, digest, entry.target
            )
        )
        return entry.size if digest is not None else 0

    def close(self) -> None:
        """Append the manifest member and the end-of-archive marker, padded to a full record."""
        data, length = self.manifest.finish()
        try:
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size, info.mode, info.mtime = length, 0o644, self._max_mtime
            self._emit(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            while chunk := data.read(1024 * 1024):
                self._emit(chunk)
            self._pad(length)
        finally:
            self.manifest.close()
        self._emit(b"\0" * (2 * BLOCK))
        if self.written % RECORD:
            self._emit(b"\0" * (RECORD - self.written % RECORD))
        self._sink.close()
