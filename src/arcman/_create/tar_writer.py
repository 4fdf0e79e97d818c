"""TarWriter: emits tar records in collection order, then the manifest and the end marker.

Headers are POSIX pax (ustar where the member fits, pax records for long or non-ASCII names
and large values), readable by GNU tar, bsdtar and Python's tarfile. Owner names are looked up
once per uid/gid rather than once per member.

tarfile's TarInfo.tobuf costs ~25 us a member, which made the writer thread the bottleneck
once compression was parallel; ``ustar_header`` builds the common case (ASCII names that fit,
values in range) directly, byte-identical to tarfile's output, and leaves everything else to
tarfile's pax path.
"""

from __future__ import annotations

import functools
import grp
import pwd
import tarfile

from .._extract.ustar import byte_sum
from .._manifest import DIR, FILE, MANIFEST_NAME, TAR_MANIFEST_MARK, ManifestWriter
from .collect import SourceEntry
from .compress import Sink
from .read import Content, LargeFile, Loaded

BLOCK = 512
RECORD = 20 * BLOCK
# Records are gathered into writes of about this size: one sink call per member (header, data,
# padding: three) cost more than the zstd compression of a small file did.
COALESCE = 1024 * 1024
_TYPES = {FILE: tarfile.REGTYPE, DIR: tarfile.DIRTYPE}
_PADDING = tuple(bytes(-n % BLOCK) for n in range(BLOCK))  # by size % BLOCK
_OCTAL_7 = 8**7
_OCTAL_11 = 8**11
# magic "ustar\0", version "00", then after the owner names: empty devmajor/devminor and prefix.
_MAGIC = tarfile.POSIX_MAGIC
_TAIL = bytes(8 + 8 + 155 + 12)
_NO_LINK = bytes(100)


def _fits(text: str, length: int) -> bool:
    return len(text) <= length and text.isascii()


@functools.lru_cache(maxsize=64)
def _owner_block(uname: str, gname: str) -> tuple[bytes, int] | None:
    """Bytes 257-511 of a ustar header (magic, owner names, the empty rest) and their byte
    sum, built once per owner; None if the names need pax records."""
    if not (_fits(uname, 32) and _fits(gname, 32)):
        return None
    tail = b"".join((
        _MAGIC, uname.encode("ascii").ljust(32, b"\0"), gname.encode("ascii").ljust(32, b"\0"),
        _TAIL,
    ))
    return tail, byte_sum(tail)


def ustar_header(
    name: str, type_: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: str, uname: str, gname: str,
) -> bytes | None:
    """A plain ustar header block as tarfile's PAX_FORMAT writes it, or None if it needs pax.
    The checksum (the sum of all bytes, its own field counted as 8 spaces) is summed per field,
    the owner part once per owner: sum() over the 512-byte block alone cost 2.6 us a member."""
    owner = _owner_block(uname, gname)
    if owner is None or not (
        _fits(name, 100) and _fits(linkname, 100)
        and 0 <= uid < _OCTAL_7 and 0 <= gid < _OCTAL_7
        and 0 <= size < _OCTAL_11 and 0 <= mtime < _OCTAL_11
    ):
        return None
    raw_name = name.encode("ascii")
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode & 0o7777, uid, gid, size, mtime)
    tail, tail_sum = owner
    checksum = byte_sum(raw_name) + byte_sum(numbers) + 8 * 32 + type_[0] + tail_sum
    if linkname:
        raw_link = linkname.encode("ascii")
        checksum += byte_sum(raw_link)
        link = raw_link.ljust(100, b"\0")
    else:
        link = _NO_LINK
    return b"".join((
        raw_name.ljust(100, b"\0"), numbers, b"%06o\0 " % checksum, type_, link, tail
    ))


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


def _header(
    name: str, type_: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: str, uname: str, gname: str,
) -> bytes:
    """The member's header: the lean ustar block when it fits, tarfile's pax sequence if not."""
    if type_ == tarfile.DIRTYPE and not name.endswith("/"):
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
        self._names = _OwnerNames() if owner_names else None
        self.manifest = ManifestWriter()
        self.written = 0
        self._parts: list[bytes] = []
        self._held = 0
        self._max_mtime = 0
        self._emit(tarfile.TarInfo.create_pax_global_header({TAR_MANIFEST_MARK: "1"}))

    def _header(self, entry: SourceEntry, size: int) -> bytes:
        names = self._names
        return _header(
            entry.path, _TYPES.get(entry.kind, tarfile.SYMTYPE), entry.mode, entry.uid,
            entry.gid, size, entry.mtime, entry.target or "",
            names.user(entry.uid) if names is not None else "",
            names.group(entry.gid) if names is not None else "",
        )

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
            self._emit(_PADDING[size % BLOCK])

    def add(self, entry: SourceEntry, content: Content) -> int:
        """Write one member; return the number of content bytes written."""
        if entry.mtime > self._max_mtime:
            self._max_mtime = entry.mtime
        digest: str | None = None
        if isinstance(content, Loaded):
            # The common member, in one step: header, data and padding.
            data = content.data
            header = self._header(entry, len(data))
            padding = _PADDING[len(data) % BLOCK]
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
                _header(MANIFEST_NAME, tarfile.REGTYPE, 0o644, 0, 0, length, self._max_mtime,
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
