"""parse_plain: a lean reader for plain ustar headers, the ones arcman (and most tars) write.

``tarfile.TarInfo.fromtarfile`` costs ~50 µs a header (the checksum summed through a 504-field
struct, eight number fields through nts/nti, a TarInfo and its pax bookkeeping); on an archive
of many small files that was the largest share of the parsing thread's time. parse_plain reads
a header only when it is sure to read it exactly as tarfile would (``frombuf`` and
``_proc_builtin``): a regular file, directory, symlink or hard link whose number fields are
plain octal and whose unsigned checksum matches. Anything else (pax and GNU extension headers,
devices, base-256 or unusual number fields, a signed checksum, the end-of-archive marker,
garbage) returns None, and the caller hands the block to tarfile, which parses it or raises
its own error. tests/test_ustar.py holds the two readers to the same results.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

from .._create.headers import byte_sum
from .._manifest import DIR, FILE, HARDLINK, SYMLINK

BLOCK = 512
SPECIAL = "special"  # devices, fifos and other members that are never extracted
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"
# name mode uid gid size mtime chksum type linkname magic version uname gname devmajor devminor
# prefix (tarfile reads the same fields; magic, version, uname and gname are not needed here)
_LAYOUT = struct.Struct("100s8s8s8s12s12s8sc100s8x64x8s8s155s12x")
# What nti() reads as an octal number: up to the first NUL, spaces around octal digits.
_NUMBER = re.compile(rb" *([0-7]*) *(?:\0|\Z)")
# How tarfile, GNU tar and bsdtar write them: zero-padded octal and a NUL (the checksum: six
# digits, NUL, space), devices as octal zeros or left empty. One match reads all of them.
_CANONICAL = re.compile(rb"([0-7]{7})\0[0-7]{7}\0[0-7]{7}\0([0-7]{11})\0([0-7]{11})\0([0-7]{6})\0 ")
_NO_DEVICE = (b"0000000\0" * 2, bytes(16))
# GNU tar's magic ("ustar  \0"): its headers never hold a name prefix; in incremental archives
# (-G, --listed-incremental) the prefix's bytes hold the atime and ctime instead.
GNU_MAGIC = b"ustar  \0"
_KINDS = {b"0": FILE, b"\0": FILE, b"5": DIR, b"2": SYMLINK, b"1": HARDLINK}
_CHECKSUM_SPACES = 8 * ord(" ")  # the checksum is summed with its own field as spaces


class PlainHeader(NamedTuple):
    name: str
    kind: str
    size: int
    mode: int
    mtime: int
    linkname: str
    data: int  # bytes of member data and padding that follow the header


def _text(field: bytes) -> str:
    """tarfile's nts(): up to the first NUL."""
    return field.split(b"\0", 1)[0].decode(_ENCODING, _ERRORS)


def parse_plain(block: bytes) -> PlainHeader | None:
    """The header in ``block`` (512 bytes) if it is a plain one, else None (ask tarfile)."""
    (name, mode, uid, gid, size, mtime, chksum, type_, linkname, devmajor, devminor,
     prefix) = _LAYOUT.unpack(block)
    kind = _KINDS.get(type_)
    if kind is None:
        return None
    canonical = _CANONICAL.match(block, 100)
    if canonical is not None and block[329:345] in _NO_DEVICE:
        octal_mode, octal_size, octal_mtime, octal_sum = canonical.groups()
        mode_, size_, mtime_ = int(octal_mode, 8), int(octal_size, 8), int(octal_mtime, 8)
        checksum = int(octal_sum, 8)
    else:
        numbers = []
        for field in (mode, size, mtime, chksum, uid, gid, devmajor, devminor):
            match = _NUMBER.match(field)
            if match is None:
                return None
            numbers.append(int(match[1] or b"0", 8))
        mode_, size_, mtime_, checksum = numbers[:4]
    if checksum != byte_sum(block) - byte_sum(chksum) + _CHECKSUM_SPACES:
        return None
    path = _text(name)
    if type_ == b"\0" and path.endswith("/"):  # old V7 tar: a directory as a file with a slash
        kind = DIR
    if kind == DIR:
        path = path.rstrip("/")
    if prefix[0] and block[257:265] != GNU_MAGIC and (head := _text(prefix)):
        path = head + "/" + path
        if kind == DIR:
            path = path.rstrip("/")
    data = -(-size_ // BLOCK) * BLOCK if kind == FILE else 0
    link = _text(linkname) if linkname[0] else ""
    return PlainHeader(path, kind, size_, mode_, mtime_, link, data)
