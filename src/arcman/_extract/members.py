"""Member sources: the members of a tar stream or a zip file, one at a time, in archive order.

Each member carries a ``read(n)`` for its data that is valid until the next member is taken
(tar is a stream). Container errors from tarfile/zipfile become CorruptArchiveError; a tar
stream must end with a proper end-of-archive marker, so damage that tarfile would take for the
end of the archive is reported instead of silently dropping the members after it.
"""

from __future__ import annotations

import stat
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .._errors import CorruptArchiveError
from .._manifest import DIR, FILE, SYMLINK
from .._stats import PhaseClock
from .decompress import DecompressedStream

HARDLINK = "hardlink"
SPECIAL = "special"
_UTF8_FLAG = 0x800  # general purpose bit 11: the name is UTF-8
_UNIX = 3  # "version made by" host system


@dataclass(slots=True)
class Member:
    name: str
    kind: str
    size: int
    mode: int
    mtime: int
    target: str | None = None
    read: Callable[[int], bytes] | None = None
    detail: str = ""


def _tar_kind(info: tarfile.TarInfo) -> tuple[str, str]:
    if info.issparse():
        return SPECIAL, "GNU sparse file"
    if info.isreg():
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


def tar_members(stream: DecompressedStream, clock: PhaseClock) -> Iterator[Member]:
    """The tar stream's members; header parsing time is the ``parsing`` phase."""
    try:
        archive = tarfile.open(fileobj=stream, mode="r|", errorlevel=2)  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as exc:
        raise CorruptArchiveError(f"not a valid tar archive: {exc}") from exc
    try:
        for info in _iter_tar(archive, clock):
            kind, detail = _tar_kind(info)
            reader = None
            if kind == FILE:
                data = archive.extractfile(info)
                assert data is not None
                reader = data.read
            yield Member(
                info.name, kind, info.size, info.mode, int(info.mtime),
                info.linkname if kind in (SYMLINK, HARDLINK) else None, reader, detail,
            )
        _check_end_of_archive(archive)
    finally:
        archive.close()


def _iter_tar(archive: tarfile.TarFile, clock: PhaseClock) -> Iterator[tarfile.TarInfo]:
    while True:
        try:
            started = time.perf_counter()
            info = archive.next()
            clock.add("parsing", time.perf_counter() - started)
        except (tarfile.TarError, EOFError, ValueError, UnicodeError) as exc:
            raise CorruptArchiveError(f"damaged tar header: {exc}") from exc
        if info is None:
            return
        yield info


def _check_end_of_archive(archive: tarfile.TarFile) -> None:
    """tarfile ends iteration on a damaged header as if the archive had ended: what follows the
    end-of-archive marker must be zero padding, or members were lost."""
    rest = archive.fileobj
    assert rest is not None
    try:
        while chunk := rest.read(1024 * 1024):
            if chunk.count(0) != len(chunk):
                raise CorruptArchiveError(
                    "damaged tar header: data follows what looks like the end of the archive"
                )
    except (tarfile.TarError, EOFError) as exc:
        raise CorruptArchiveError(f"damaged tar archive: {exc}") from exc


def _zip_mtime(info: zipfile.ZipInfo) -> int:
    """The extended-timestamp field when present (exact, UTC), else the DOS time as UTC."""
    extra = info.extra
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, i)
        body = extra[i + 4 : i + 4 + size]
        if tag == 0x5455 and len(body) >= 5 and body[0] & 1:
            return int(struct.unpack_from("<I", body, 1)[0])
        i += 4 + size
    import calendar

    return calendar.timegm((*info.date_time, 0, 0, 0))


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The member's name as unzip and bsdtar read it.

    Without the UTF-8 flag, zipfile decodes names as cp437 (the DOS default), but zips made on
    Unix (Info-ZIP's ``zip``) hold the raw bytes of the file name, normally UTF-8.
    """
    if info.flag_bits & _UTF8_FLAG or info.create_system != _UNIX:
        return info.filename
    return info.filename.encode("cp437").decode("utf-8", "surrogateescape")


def zip_members(archive: zipfile.ZipFile) -> Iterator[Member]:
    for info in archive.infolist():
        unix_mode = info.external_attr >> 16 if info.create_system == 3 else 0
        mode = stat.S_IMODE(unix_mode)
        if info.is_dir():
            kind, mode = DIR, mode or 0o755
        elif stat.S_ISLNK(unix_mode):
            kind = SYMLINK
        elif unix_mode and not stat.S_ISREG(unix_mode):
            kind = SPECIAL
        else:
            kind, mode = FILE, mode or 0o644
        member = Member(_zip_name(info), kind, info.file_size, mode, _zip_mtime(info))
        try:
            if kind == SYMLINK:
                member.target = archive.read(info).decode("utf-8", "surrogateescape")
            elif kind == FILE:
                member.read = archive.open(info).read
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise CorruptArchiveError(f"damaged zip member {info.filename!r}: {exc}") from exc
        yield member


def open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise CorruptArchiveError(f"not a valid zip archive: {exc}") from exc
