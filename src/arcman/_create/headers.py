"""ustar headers for the common member, built without tarfile.

tarfile's TarInfo.tobuf costs ~25 us a member, which made the writer thread the bottleneck
once compression was parallel; ``ustar_header`` builds the common case (ASCII names that fit,
values in range) directly, byte-identical to tarfile's PAX_FORMAT output, and says when a
member needs tarfile's pax path instead.

Imported by the helper process (files.record_batch): nothing here may import more than the
standard library's core.
"""

from __future__ import annotations

from zlib import adler32

BLOCK = 512
PADDING = tuple(bytes(-n % BLOCK) for n in range(BLOCK))  # what follows data, by size % BLOCK
REGTYPE, LNKTYPE, SYMTYPE, DIRTYPE = b"0", b"1", b"2", b"5"
_OCTAL_7 = 8**7
_OCTAL_11 = 8**11
# magic "ustar\0", version "00", then after the owner names: empty devmajor/devminor and prefix.
_MAGIC = b"ustar\x0000"
_TAIL = bytes(8 + 8 + 155 + 12)
_NO_LINK = bytes(100)


def byte_sum(data: bytes) -> int:
    """sum(data), ~5x faster for up to a block: adler32's low half is 1 + the byte sum modulo
    65521, exact for up to 256 bytes (1 + 256 * 255 < 65521)."""
    if len(data) <= 256:
        return (adler32(data) & 0xFFFF) - 1
    if len(data) <= 2 * 256:
        return (adler32(data[:256]) & 0xFFFF) + (adler32(data[256:]) & 0xFFFF) - 2
    return sum(data)


def _fits(text: str, length: int) -> bool:
    return len(text) <= length and text.isascii()


# Not functools.lru_cache: functools costs the helper process ~3 ms to import. A tree has few
# owners, and the collector holds each pair anyway.
_OWNER_BLOCKS: dict[tuple[str, str], tuple[bytes, int] | None] = {}


def _owner_block(uname: str, gname: str) -> tuple[bytes, int] | None:
    """Bytes 257-511 of a ustar header (magic, owner names, the empty rest) and their byte
    sum, built once per owner; None if the names need pax records."""
    key = (uname, gname)
    if key not in _OWNER_BLOCKS:
        block = None
        if _fits(uname, 32) and _fits(gname, 32):
            tail = b"".join((
                _MAGIC, uname.encode("ascii").ljust(32, b"\0"),
                gname.encode("ascii").ljust(32, b"\0"), _TAIL,
            ))
            block = tail, byte_sum(tail)
        _OWNER_BLOCKS[key] = block
    return _OWNER_BLOCKS[key]


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
