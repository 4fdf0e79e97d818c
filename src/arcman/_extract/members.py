"""Member sources: the members of a tar stream or a zip file, one at a time, in archive order.

Each member carries a ``read(n)`` for its data that is valid until the next member is taken
(tar is a stream). Container errors from tarfile/zipfile become CorruptArchiveError; a tar
stream must end with a proper end-of-archive marker, so damage that tarfile would take for the
end of the archive is reported instead of silently dropping the members after it, and so is a
stream cut exactly at a member boundary. Zip entries whose data overlap (the "quoted overlap"
bomb, which Python 3.11 before 3.11.8 does not detect) are refused when the file is opened.
"""

from __future__ import annotations

import os
import stat
import struct
import tarfile
import time
from collections.abc import Callable, Generator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Self, TypeVar, cast

from .._errors import (
    ArchiveError,
    CorruptArchiveError,
    UnsafeMemberError,
    UnsupportedFormatError,
)
from .._manifest import DIR, FILE, SYMLINK, ZIP_MANIFEST_MARK
from .._manifest import HARDLINK as HARDLINK
from .._stats import PhaseClock
from .decompress import DecompressedStream
from .sparse import SparseData
from .ustar import BLOCK, GNU_MAGIC, parse_plain
from .ustar import SPECIAL as SPECIAL

if TYPE_CHECKING:  # imported by open_zip: tar runs do without zipfile (~4.5 ms with pathlib)
    import zipfile

_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
_UNIX = 3  # "version made by" host system
MAX_TARGET_BYTES = 4095
# What a member's pax and GNU extended headers may hold together: names and link targets are at
# most 4 KiB each; GNU tar's own pax records (times, sizes, xattrs) are far below this.
MAX_HEADER_BYTES = 1024 * 1024
_ZIP_LOCAL_HEADER = 30
_VOLUME_LABEL = b"V"
_ZIP_SPECIAL = {stat.S_IFCHR: "device file", stat.S_IFBLK: "device file", stat.S_IFSOCK: "socket"}
# What a zip member's Unix file type may say of a regular file: nothing (zipfile's writestr),
# S_IFREG, or S_IFIFO, which Info-ZIP records for data it read from a pipe (``cmd | zip``,
# ``zip out.zip -``). A zip member is always data: unzip, bsdtar, 7z and zipfile extract it.
_ZIP_FILE_TYPES = (0, stat.S_IFREG, stat.S_IFIFO)
_ZIP_END_RECORD = 22
# The compression methods zipfile reads: stored, deflate, bzip2, lzma. Others (deflate64, which
# Windows Explorer and 7-Zip write for large files; implode, ppmd) are refused by name before
# anything is extracted, not reported as damage when their first read fails.
_ZIP_METHODS = (0, 8, 12, 14)
# tarfile's header errors (not in typeshed): the end-of-archive marker, and a stream that ends
# where a header is due.
_END_MARKER: type[Exception] = tarfile.EOFHeaderError  # type: ignore[attr-defined]
_NO_HEADER: tuple[type[Exception], ...] = (
    tarfile.EmptyHeaderError,  # type: ignore[attr-defined]
    tarfile.TruncatedHeaderError,  # type: ignore[attr-defined]
)
Data = bytes | memoryview  # member data: views of decompressed tar pieces, zip reads


@dataclass(slots=True)
class Member:
    name: str
    kind: str
    size: int
    mode: int
    mtime: int
    target: str | None = None
    read: Callable[[int], Data] | None = None
    detail: str = ""
    end: int = 0  # zip: the least offset in the file where the member's data may end
    # The mtime to give the file where it is not whole seconds: (seconds, nanoseconds) from a
    # pax header, which GNU tar restores too; ``mtime`` (whole seconds) is what the manifest
    # and the checks compare.
    exact_mtime: tuple[int, int] | None = None


def _tar_kind(info: tarfile.TarInfo) -> tuple[str, str]:
    if info.isreg():  # a GNU sparse file too (type S, or a pax map)
        return FILE, ""
    if info.isdir():
        return DIR, ""
    if info.issym():
        return SYMLINK, ""
    if info.islnk():
        return HARDLINK, ""
    if info.ischr() or info.isblk():
        return SPECIAL, "device file"
    if info.isfifo():
        return SPECIAL, "fifo"
    return SPECIAL, f"tar member type {info.type!r}"


_Info = TypeVar("_Info", bound=tarfile.TarInfo)


class TarHeader(tarfile.TarInfo):
    """tarfile's TarInfo, except that a GNU header's bytes where ustar keeps the name prefix are
    not taken for one: GNU tar keeps the atime and ctime there in incremental archives, which
    tarfile read as a directory ('15305310750/file'). GNU tar and bsdtar ignore them.

    Where tarfile has ``_frombuf`` (newer CPython releases), ``fromtarfile`` calls it and not
    ``frombuf``: both are overridden, so that every version reads such a header alike.
    """

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        return _without_gnu_prefix(super().frombuf(buf, encoding, errors), buf, encoding, errors)

    @classmethod
    def _frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str, **options: Any) -> Self:
        obj: Self = super()._frombuf(buf, encoding, errors, **options)  # type: ignore[misc]
        return _without_gnu_prefix(obj, buf, encoding, errors)


def _without_gnu_prefix(obj: _Info, buf: bytes | bytearray, encoding: str, errors: str) -> _Info:
    """``obj`` named by its name field alone when ``buf`` is a GNU header (see TarHeader)."""
    if buf[257:265] == GNU_MAGIC and buf[345] and obj.type not in tarfile.GNU_TYPES:
        name = tarfile.nts(buf[0:100], encoding, errors)  # type: ignore[attr-defined]
        obj.name = name.rstrip("/") if obj.isdir() else name
    return obj


class _HeaderSource:
    """What ``tarfile.TarInfo.fromtarfile`` needs of a TarFile: the stream, the offset of the
    next header, the name encoding and the pax global headers.

    Plain headers are read by parse_plain; tarfile's own header code (checksum, number fields,
    pax, GNU long names, sparse maps) parses every other one, and only the streaming TarFile
    around it, which costs ~40 µs and a copy per member, is replaced by reading member data
    straight from the decompressed pieces.
    """

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, stream: DecompressedStream, pax_headers: dict[str, str]) -> None:
        self.fileobj: DecompressedStream | _Replay = stream
        self.offset = 0
        self.pax_headers = pax_headers


class _Replay:
    """The stream with a header block that was already read put back in front, for tarfile.

    It also bounds what one member's headers may read: tarfile reads a pax or GNU long-name
    header's data whole, whatever size it declares (a few KB of zeros compressed could ask
    for gigabytes of memory), and no size limit applies to headers.
    """

    def __init__(self, stream: DecompressedStream, block: bytes) -> None:
        self._stream = stream
        self._block = block
        self._left = MAX_HEADER_BYTES + len(block)

    def read(self, n: int) -> bytes:
        self._left -= n
        if self._left < 0:
            raise CorruptArchiveError(
                f"damaged tar header: its extended headers are over {MAX_HEADER_BYTES} bytes"
            )
        head, self._block = self._block[:n], self._block[n:]
        return head + self._stream.read(n - len(head)) if len(head) < n else head

    def tell(self) -> int:
        return self._stream.tell() - len(self._block)


def _inert(pax_headers: dict[str, str]) -> bool:
    """Whether the pax global headers leave members as their ustar headers say (tarfile applies
    only its pax fields and GNU sparse keywords to each member)."""
    return not any(
        key in tarfile.PAX_FIELDS or key.startswith("GNU.sparse.")
        for key in pax_headers
    )


def tar_members(
    stream: DecompressedStream, clock: PhaseClock, pax_headers: dict[str, str]
) -> Generator[Member, None, None]:
    """The tar stream's members, header parsing timed as the ``parsing`` phase; once they are
    exhausted, ``pax_headers`` holds the pax global headers.

    A member's ``read(n)`` returns a view of the decompressed data (no copy when it lies in one
    piece). A damaged header is refused rather than taken for the end of the archive, and the
    end-of-archive marker must be there, followed by nothing but zeros.
    """
    source = _HeaderSource(stream, pax_headers)
    plain = True  # whether parse_plain may read headers (no pax global header alters them)
    spent = 0.0  # added to the clock once, not under its lock for every member
    try:
        while True:
            started = time.perf_counter()
            block = stream.read(BLOCK) if plain else b""
            header = parse_plain(block) if len(block) == BLOCK else None
            member: Member | None
            if header is not None:
                source.offset = stream.tell() + header.data
                member = Member(
                    header.name, header.kind, header.size, header.mode, header.mtime,
                    header.linkname if header.kind in (SYMLINK, HARDLINK) else None,
                    stream.view if header.kind == FILE else None,
                )
            else:
                source.fileobj = _Replay(stream, block)
                info = _next_header(source)
                # GNU tar's volume label (tar -V) names the archive, not a member: GNU tar and
                # bsdtar extract without it.
                while info is not None and info.type == _VOLUME_LABEL:
                    _skip_to(stream, source.offset)
                    source.fileobj = _Replay(stream, b"")
                    info = _next_header(source)
                source.fileobj = stream
                plain = _inert(pax_headers)
                member = (
                    None if info is None
                    else _tar_member(info, stream, stored=source.offset - stream.tell())
                )
            spent += time.perf_counter() - started
            if member is None:
                break
            yield member
            _skip_to(stream, source.offset)
    finally:
        clock.add("parsing", spent)
    _check_end_of_archive(stream)


def _tar_member(info: tarfile.TarInfo, stream: DecompressedStream, *, stored: int) -> Member:
    """The member tarfile parsed; ``stored``: the length of its data in the archive."""
    kind, detail = _tar_kind(info)
    read: Callable[[int], Data] | None = stream.view if kind == FILE else None
    if kind == FILE and info.sparse is not None:
        # typeshed says bytes; tarfile keeps (offset, length) pairs.
        sparse = cast("list[tuple[int, int]]", info.sparse)
        read = SparseData(info.name, stream.view, sparse, info.size, stored).read
    return Member(
        info.name, kind, info.size, info.mode, _mtime(info),
        info.linkname if kind in (SYMLINK, HARDLINK) else None, read, detail,
        exact_mtime=_pax_mtime(info),
    )


def _mtime(info: tarfile.TarInfo) -> int:
    """The member's mtime as whole seconds that os.utime takes (a pax header may say 'inf',
    'nan' or 1e30; base-256 fields hold up to 2**95)."""
    try:
        mtime = int(info.mtime)
    except (OverflowError, ValueError):
        mtime = 2**63
    if not -(2**63) <= mtime < 2**63:
        raise CorruptArchiveError(f"damaged tar header: mtime {info.mtime!r} of {info.name!r}")
    return mtime


def _pax_mtime(info: tarfile.TarInfo) -> tuple[int, int] | None:
    """A pax header's mtime as (seconds, nanoseconds), read from its text (tarfile's float
    is ~0.2 us off), where it has a fraction; None where it has none, or is not a number."""
    text = info.pax_headers.get("mtime")
    if text is None or "." not in text:
        return None
    import decimal  # here: most archives have no such header

    try:
        exact = decimal.Decimal(text)
        seconds = int(exact.to_integral_value(decimal.ROUND_FLOOR))
        nanoseconds = int((exact - seconds) * 1_000_000_000)
    except (decimal.InvalidOperation, ValueError, OverflowError):
        return None
    return (seconds, nanoseconds) if nanoseconds else None


def _next_header(source: _HeaderSource) -> tarfile.TarInfo | None:
    """The next member's header, or None at the end-of-archive marker."""
    try:
        return TarHeader.fromtarfile(source)  # type: ignore[arg-type]
    except _END_MARKER:
        return None
    except _NO_HEADER as exc:
        if source.offset == 0:
            raise CorruptArchiveError(f"not a valid tar archive: {exc}") from exc
        # The data stopped where a header was due: cut at a member boundary, not ended.
        raise CorruptArchiveError(
            "tar archive is truncated: its end-of-archive marker is missing"
        ) from exc
    except (tarfile.TarError, EOFError, ValueError, UnicodeError) as exc:
        if source.offset == 0:
            raise CorruptArchiveError(f"not a valid tar archive: {exc}") from exc
        raise CorruptArchiveError(f"damaged tar header: {exc}") from exc


def _skip_to(stream: DecompressedStream, offset: int) -> None:
    """Move past what the caller left of the member's data and its padding."""
    while (missing := offset - stream.tell()) > 0:
        if not stream.view(min(missing, 1024 * 1024)):
            raise CorruptArchiveError("tar archive is truncated inside a member")


def _check_end_of_archive(stream: DecompressedStream) -> None:
    """What follows the end-of-archive marker must be zero padding, or members were lost."""
    while chunk := stream.view(1024 * 1024):
        if chunk.nbytes != chunk.tobytes().count(0):
            raise CorruptArchiveError(
                "damaged tar header: data follows what looks like the end of the archive"
            )


def _zip_mtime(info: zipfile.ZipInfo, dos_in_utc: bool) -> int:
    """The extended-timestamp field when present (exact), else the NTFS field's mtime (7-Zip
    writes it: 100 ns since 1601, any year), else the DOS time (2-second steps, 1980-2107).

    The extended-timestamp field is signed, as Info-ZIP writes it (before 1970 it is
    negative), unless the DOS date is 2038 or later: then it holds unsigned seconds up to 2106
    (unzip's rule, and what arcman writes). The DOS time is local time, as Info-ZIP, zipfile,
    7-Zip and bsdtar write it and unzip reads it, except in arcman's own zips, which write it in
    UTC to be reproducible.
    """
    extra = info.extra
    ntfs: int | None = None
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + size]
        if tag == 0x5455 and len(body) >= 5 and body[0] & 1:
            seconds: int = struct.unpack_from("<i", body, 1)[0]
            return seconds + 2**32 if seconds < 0 and info.date_time[0] >= 2038 else seconds
        if tag == 0x000A and ntfs is None:
            ntfs = _ntfs_mtime(body)
        i += 4 + size
    if ntfs is not None:
        return ntfs
    import calendar

    fields = (*info.date_time, 0, 0, -1)
    if not dos_in_utc:
        try:
            return int(time.mktime(fields))
        except (OverflowError, ValueError):
            pass  # a date the C library cannot place (damaged fields): taken as UTC
    return calendar.timegm(fields)


def _ntfs_mtime(body: bytes) -> int | None:
    """The mtime in an NTFS extra field's body (4 reserved bytes, then attributes; attribute 1
    holds mtime, atime and ctime as FILETIMEs), in Unix seconds; None if it has none."""
    j = 4
    while j + 4 <= len(body):
        attribute, size = struct.unpack_from("<HH", body, j)
        if attribute == 1 and size >= 24 and j + 12 <= len(body):
            filetime: int = struct.unpack_from("<Q", body, j + 4)[0]
            return filetime // 10_000_000 - 11_644_473_600 if filetime else None
        j += 4 + size
    return None


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name as unzip and bsdtar read it.

    Without the UTF-8 flag, zipfile decodes names as cp437 (the DOS default), but zips made on
    Unix (Info-ZIP's ``zip``) hold the raw bytes of the file name, normally UTF-8.
    """
    if info.flag_bits & _UTF8_FLAG or info.create_system != _UNIX:
        return info.filename
    return info.filename.encode("cp437").decode("utf-8", "surrogateescape")


def _zip_errors() -> tuple[type[Exception], ...]:
    """What zipfile raises on damaged data: its own error, and its decoders' (zlib, bzip2's
    OSError, lzma)."""
    import lzma  # loaded already, by zipfile
    import zipfile
    import zlib

    return (
        zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError,
        NotImplementedError,
    )


def _zip_reader(
    stream: IO[bytes], info: zipfile.ZipInfo, errors: tuple[type[Exception], ...]
) -> Callable[[int], Data]:
    """The member's read(n); a bad CRC, found by its last read, or data its decoder refuses
    (``errors``) become CorruptArchiveError."""

    def read(n: int) -> Data:
        try:
            return stream.read(n)
        except errors as exc:
            raise _damaged(info, exc) from exc

    return read


def _damaged(info: zipfile.ZipInfo, exc: Exception) -> CorruptArchiveError:
    """The error for a zip member that zipfile could not read."""
    return CorruptArchiveError(f"damaged zip member {info.filename!r}: {exc}")


def zip_members(archive: zipfile.ZipFile) -> Generator[Member, None, None]:
    """The archive's members, each file's data read from a stream of its own, which is closed
    once the next member is asked for, or the iterator closed: the archive's file stays open
    while any of them is (zipfile counts them), whatever ``archive.close()`` says."""
    errors = _zip_errors()
    dos_in_utc = archive.comment == ZIP_MANIFEST_MARK  # made by arcman
    for info in archive.infolist():
        if not info.filename:
            raise CorruptArchiveError("zip entry with an empty name")
        if info.flag_bits & 0x1:
            raise CorruptArchiveError(f"zip entry {info.filename!r} is encrypted (not supported)")
        unix_mode = info.external_attr >> 16 if info.create_system == 3 else 0
        mode = stat.S_IMODE(unix_mode)
        # Without a file type the entry carries no Unix mode: a default. With one, the mode
        # is as stored, 000 too (a chmod 000 file archived as such).
        typed = stat.S_IFMT(unix_mode) != 0
        detail = ""
        if info.is_dir():
            kind, mode = DIR, mode if typed else 0o755
        elif stat.S_ISLNK(unix_mode):
            kind = SYMLINK
        elif stat.S_IFMT(unix_mode) not in _ZIP_FILE_TYPES:
            kind = SPECIAL
            detail = _ZIP_SPECIAL.get(stat.S_IFMT(unix_mode), f"zip file type {unix_mode:o}")
        else:
            kind, mode = FILE, mode if typed else 0o644
        member = Member(
            _zip_name(info), kind, info.file_size, mode, _zip_mtime(info, dos_in_utc),
            detail=detail, end=info.header_offset + _ZIP_LOCAL_HEADER + info.compress_size,
        )
        data: IO[bytes] | None = None
        try:
            if kind == SYMLINK:
                with archive.open(info) as link:
                    target = link.read(MAX_TARGET_BYTES + 1)
                if len(target) > MAX_TARGET_BYTES:
                    raise UnsafeMemberError(info.filename, "symlink target is too long")
                member.target = target.decode("utf-8", "surrogateescape")
            elif kind == FILE:
                data = archive.open(info)
                member.read = _zip_reader(data, info, errors)
        except errors as exc:
            raise _damaged(info, exc) from exc
        with nullcontext() if data is None else data:
            yield member


def open_zip(file: str | IO[bytes]) -> zipfile.ZipFile:
    """A zip archive from its path or a seekable file, its end and layout checked."""
    import zipfile  # here, not at the top: tar archives do not need it

    try:
        archive = zipfile.ZipFile(file)
    except _zip_errors() as exc:
        raise CorruptArchiveError(f"not a valid zip archive: {exc}") from exc
    try:
        _check_end(file, archive.comment)
        _check_layout(archive)
        _check_methods(archive)
    except ArchiveError:
        archive.close()
        raise
    return archive


def _check_end(file: str | IO[bytes], comment: bytes) -> None:
    """The end record (and its comment) must close the file: zipfile accepts trailing data,
    which is how damage to the end record's lengths would pass for a smaller, valid zip."""
    with open(file, "rb") if isinstance(file, str) else nullcontext(file) as f:
        end = f.seek(0, os.SEEK_END) - _ZIP_END_RECORD - len(comment)
        f.seek(max(end, 0))
        if end < 0 or f.read(4) != b"PK\x05\x06":
            raise CorruptArchiveError("data follows the end of the zip archive")


def _check_methods(archive: zipfile.ZipFile) -> None:
    import zipfile

    names: dict[int, str] = zipfile.compressor_names  # type: ignore[attr-defined]
    for info in archive.infolist():
        if info.compress_type not in _ZIP_METHODS:
            method = names.get(info.compress_type, "an unknown method")
            raise UnsupportedFormatError(
                f"zip member {info.filename!r} is compressed with {method} (method "
                f"{info.compress_type}); arcman reads stored, deflate, bzip2 and lzma members"
            )


def _check_layout(archive: zipfile.ZipFile) -> None:
    """Each entry's local header and data must end before the next entry (or the central
    directory) begins; the bound used (header without its name, then the data) is a minimum."""
    infos = sorted(archive.infolist(), key=lambda i: i.header_offset)
    if not infos:
        return
    limits = [i.header_offset for i in infos[1:]] + [archive.start_dir]
    for info, limit in zip(infos, limits, strict=True):
        if info.header_offset + _ZIP_LOCAL_HEADER + info.compress_size > limit:
            raise CorruptArchiveError(f"zip entry {info.filename!r} overlaps the next one")
