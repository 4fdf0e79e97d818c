"""ZipWriter: emits zip members in collection order, deflated in parallel, then the manifest
and the central directory.

Written by hand because Python's zipfile cannot take data that was already compressed, and
compressing inside zipfile would serialize all deflate work on the writer thread. Small members
are deflated by the reader's workers (``prepare``); large ones go through the same block-parallel
deflate as gzip, with a data descriptor after them. Zip64 records are added only when sizes,
offsets or the member count need them. Unix modes and symlinks follow Info-ZIP's conventions,
and an extended-timestamp field keeps mtimes exact from 1970 to 2106 (zip holds no mtime outside
1970-2107: see _timestamp_field).
"""

from __future__ import annotations

import stat
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO

from .._backends import crc32_combiner
from .._manifest import (
    DIR,
    FILE,
    MANIFEST_NAME,
    ZIP_MANIFEST_MARK,
    ManifestWriter,
)
from .._stats import PhaseClock
from .._workers import Submit, codec_share
from .collect import SourceEntry
from .compress import BlockCompressor, DeflateBlocks, deflate_backend
from .read import Content, LargeFile, Loaded

ZIP64_LIMIT = (1 << 31) - 1
_STORED, _DEFLATED = 0, 8
_FLAG_DESCRIPTOR, _FLAG_UTF8 = 0x08, 0x800
_UNIX = 3


@dataclass(slots=True)
class _Record:
    name: bytes
    flags: int
    method: int
    dostime: int
    dosdate: int
    crc: int
    csize: int
    usize: int
    offset: int
    external: int
    mtime: int


_DOS_FIRST, _DOS_LAST = 315532800, 4354819198  # 1980-01-01 00:00:00, 2107-12-31 23:59:58 UTC
_UT_LAST = 0xFFFFFFFF  # 2106-02-07 06:28:15 UTC


def _dos_time(mtime: int) -> tuple[int, int]:
    """The DOS time and date fields, in UTC (reproducible archives), clamped to what their
    7-bit year holds, as zipfile's strict_timestamps=False does."""
    t = time.gmtime(min(max(mtime, _DOS_FIRST), _DOS_LAST))
    return (t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2), (
        (t.tm_year - 1980) << 9 | t.tm_mon << 5 | t.tm_mday
    )


def _timestamp_field(mtime: int) -> bytes:
    """The extended-timestamp extra field, which keeps the mtime exact: unsigned 32-bit
    seconds, as unzip reads it when the DOS date is past 2038. Before 1970 it holds 1970; after
    2106 it is left out, so that readers take the DOS time (up to 2107) rather than 2106."""
    if mtime > _UT_LAST:
        return b""
    return struct.pack("<HHBI", 0x5455, 5, 1, max(mtime, 0))


class _CountingOut:
    """Counts bytes written so record offsets are known without tell()."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def flush(self) -> None:
        self.out.flush()


class ZipWriter:
    def __init__(
        self, out: BinaryIO, level: int, submit: Submit | None, threads: int, clock: PhaseClock,
        budget: int,
    ) -> None:
        self._out = _CountingOut(out)
        self._in_flight = codec_share(budget)
        self._codec = DeflateBlocks(level) if level else None  # also used by the workers
        self._crc32 = deflate_backend(6)[0].crc32  # for stored members: zlib-ng's, SIMD
        self._submit = submit
        self._threads = threads
        self._clock = clock
        self._records: list[_Record] = []
        self.manifest = ManifestWriter()
        self.written = 0

    def prepare(self, data: bytes) -> tuple[int, int, bytes]:
        """Worker-side: CRC-32 and the member's stored bytes (deflated when that is smaller)."""
        if self._codec is None:
            return self._crc32(data), _STORED, data
        packed, crc = self._codec.compress(data, b"", True)
        if len(packed) < len(data):
            return crc, _DEFLATED, packed
        return crc, _STORED, data

    def add(self, entry: SourceEntry, content: Content) -> int:
        name = entry.path + "/" if entry.kind == DIR else entry.path
        kind_bits = {FILE: stat.S_IFREG, DIR: stat.S_IFDIR}.get(entry.kind, stat.S_IFLNK)
        external = (kind_bits | entry.mode) << 16 | (0x10 if entry.kind == DIR else 0)
        digest: str | None = None
        if isinstance(content, Loaded):
            crc, method, packed = content.prepared
            self._member(name, entry.mtime, external, method, crc, packed, len(content.data))
            digest = content.sha256
        elif isinstance(content, LargeFile):
            self._large_member(name, entry, external, content)
            digest = content.sha256
        else:
            data = (entry.target or "").encode("utf-8", "surrogateescape")
            self._member(name, entry.mtime, external, _STORED, self._crc32(data), data, len(data))
        self.manifest.add(
            entry.path, entry.kind, entry.size, entry.mode, entry.mtime, digest, entry.target
        )
        return entry.size if digest is not None else 0

    def _new_record(self, name: str, mtime: int, external: int, method: int, flags: int) -> _Record:
        raw = name.encode("utf-8", "surrogateescape")
        if not raw.isascii():
            flags |= _FLAG_UTF8
        dostime, dosdate = _dos_time(mtime)
        return _Record(raw, flags, method, dostime, dosdate, 0, 0, 0, self._out.offset,
                       external, mtime)

    def _member(
        self, name: str, mtime: int, external: int, method: int, crc: int, packed: bytes, usize: int
    ) -> None:
        rec = self._new_record(name, mtime, external, method, 0)
        rec.crc, rec.csize, rec.usize = crc, len(packed), usize
        big = rec.usize > ZIP64_LIMIT or rec.csize > ZIP64_LIMIT
        self._write_local(rec, zip64=big)
        self._out.write(packed)
        self.written += usize
        self._records.append(rec)

    def _large_member(
        self, name: str, entry: SourceEntry, external: int, content: LargeFile
    ) -> None:
        method = _STORED if self._codec is None else _DEFLATED
        rec = self._new_record(name, entry.mtime, external, method, _FLAG_DESCRIPTOR)
        big = entry.size > ZIP64_LIMIT
        self._write_local(rec, zip64=big)
        start = self._out.offset
        if self._codec is not None:
            deflater = BlockCompressor(
                self._out.out, self._codec, self._submit, self._threads,
                self._clock, self._in_flight, crc32_combiner(),
            )
            for chunk in content.chunks():
                deflater.writelines([chunk])
            deflater.close()
            self._out.offset += deflater.compressed_size
            rec.crc = deflater.crc
        else:
            crc = 0
            for chunk in content.chunks():
                crc = self._crc32(chunk, crc)
                self._out.write(chunk)
            rec.crc = crc
        rec.csize, rec.usize = self._out.offset - start, entry.size
        fmt = "<4sIQQ" if big else "<4sIII"
        self._out.write(struct.pack(fmt, b"PK\x07\x08", rec.crc, rec.csize, rec.usize))
        self.written += entry.size
        self._records.append(rec)

    def _write_local(self, rec: _Record, zip64: bool) -> None:
        extra = b""
        csize, usize = rec.csize, rec.usize
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, rec.usize, rec.csize)
            csize = usize = 0xFFFFFFFF
        extra += _timestamp_field(rec.mtime)
        self._out.write(
            struct.pack(
                "<4sHHHHHIIIHH", b"PK\x03\x04", 45 if zip64 else 20, rec.flags, rec.method,
                rec.dostime, rec.dosdate, rec.crc if not rec.flags & _FLAG_DESCRIPTOR else 0,
                0 if rec.flags & _FLAG_DESCRIPTOR and not zip64 else csize,
                0 if rec.flags & _FLAG_DESCRIPTOR and not zip64 else usize,
                len(rec.name), len(extra),
            )
            + rec.name
            + extra
        )

    def close(self) -> None:
        """Write the manifest member, the central directory and the end records."""
        data, length = self.manifest.finish()
        try:
            body = data.read()
        finally:
            self.manifest.close()
        mtime = max((r.mtime for r in self._records), default=0)
        self._member(MANIFEST_NAME, mtime, (stat.S_IFREG | 0o644) << 16, _STORED,
                     self._crc32(body), body, length)
        cd_start = self._out.offset
        for rec in self._records:
            self._write_central(rec)
        cd_size = self._out.offset - cd_start
        count = len(self._records)
        if count >= 0xFFFF or cd_start > ZIP64_LIMIT or cd_size > ZIP64_LIMIT:
            eocd64 = self._out.offset
            self._out.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0,
                                        count, count, cd_size, cd_start))
            self._out.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64, 1))
            count16, size32, start32 = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
        else:
            count16, size32, start32 = count, cd_size, cd_start
        self._out.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count16, count16,
                                    size32, start32, len(ZIP_MANIFEST_MARK)))
        self._out.write(ZIP_MANIFEST_MARK)
        self._out.flush()

    def _write_central(self, rec: _Record) -> None:
        fields: list[int] = []
        usize, csize, offset = rec.usize, rec.csize, rec.offset
        if usize > ZIP64_LIMIT:
            fields.append(usize)
            usize = 0xFFFFFFFF
        if csize > ZIP64_LIMIT:
            fields.append(csize)
            csize = 0xFFFFFFFF
        if offset > ZIP64_LIMIT:
            fields.append(offset)
            offset = 0xFFFFFFFF
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        extra += _timestamp_field(rec.mtime)
        version = 45 if fields else 20
        self._out.write(
            struct.pack(
                "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", _UNIX << 8 | version, version, rec.flags,
                rec.method, rec.dostime, rec.dosdate, rec.crc, csize, usize, len(rec.name),
                len(extra), 0, 0, 0, rec.external, offset,
            )
            + rec.name
            + extra
        )
