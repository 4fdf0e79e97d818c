"""The lean ustar header reader must read every header it accepts exactly as tarfile does, and
leave to tarfile everything else (including every header tarfile refuses)."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from arcman._extract.members import TarHeader, _tar_kind
from arcman._extract.ustar import BLOCK, byte_sum, parse_plain


class _Source:
    """The parts of a TarFile that TarInfo.fromtarfile uses."""

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, data: bytes) -> None:
        self.fileobj = io.BytesIO(data)
        self.offset = 0
        self.pax_headers: dict[str, str] = {}


def tarfile_reads(block: bytes) -> tuple[str, str, int, int, int, str, int] | None:
    """What tarfile (as arcman reads through it: ``TarHeader``) makes of ``block``: the fields
    parse_plain returns, or None if it refuses."""
    source = _Source(block + bytes(8 * BLOCK))
    try:
        info = TarHeader.fromtarfile(source)  # type: ignore[arg-type]
    except (tarfile.TarError, ValueError, UnicodeError, EOFError):
        return None
    kind, _ = _tar_kind(info)
    return (info.name, kind, info.size, info.mode, int(info.mtime), info.linkname,
            source.offset - BLOCK)


def assert_agrees(block: bytes) -> None:
    header = parse_plain(block)
    if header is not None:
        assert tuple(header) == tarfile_reads(block)


def with_checksum(block: bytes, signed: bool = False) -> bytes:
    body = block[:148] + b" " * 8 + block[156:]
    total = sum(b - 256 if signed and b > 127 else b for b in body)
    return body[:148] + b"%06o\0 " % (total % 8**6) + body[156:]


OCTAL = st.integers(0, 8**7 - 1).map(lambda n: b"%o" % n)
NUMBER = st.one_of(
    st.tuples(st.sampled_from([b"", b" ", b"00"]), OCTAL, st.sampled_from([b"", b" "]),
              st.sampled_from([b"\0", b" \0", b"", b"\0garbage"])).map(b"".join),
    st.just(b""),
)
ODD_NUMBERS = [
    b" " * 8, b"\x80\0\0\0\0\0\0\x01", b"\xff" * 8, b"0o17", b"1_0", b"+7", b"-7", b"7 \tx",
    b"\x1c7", b"7\x1c", b"\t7", b"7\t", b"7\tx", b"8", b"1 2", b"7\xe9", b"7\0x",
]
ODD_NUMBER = st.one_of(st.sampled_from(ODD_NUMBERS), st.binary(max_size=12))
NUMBERS = {"mode": (100, 8), "uid": (108, 8), "gid": (116, 8), "size": (124, 12),
           "mtime": (136, 12), "devmajor": (329, 8), "devminor": (337, 8)}
NAME = st.one_of(
    st.text(st.characters(min_codepoint=1), max_size=40).map(
        lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=100),
    st.sampled_from([b"dir/", b"dir//", b"/", b"a/b/", b""]),
)
TYPE = st.one_of(
    st.sampled_from([b"0", b"\0", b"1", b"2", b"5"]),
    st.sampled_from([b"3", b"4", b"6", b"7", b"x", b"g", b"L", b"K", b"S", b"X", b"V", b"\xff"]),
)


def field(value: bytes, width: int) -> bytes:
    return value[:width].ljust(width, b"\0")


def put(block: bytes, offset: int, value: bytes) -> bytes:
    return block[:offset] + value + block[offset + len(value):]


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """Mostly well-formed headers with a few odd number fields and a right, signed or wrong
    checksum: the cases where a lean reader could drift from tarfile."""
    block = bytearray(BLOCK)
    block[0:100] = field(draw(NAME), 100)
    for offset, width in NUMBERS.values():
        block[offset:offset + width] = field(draw(NUMBER), width)
    block[148:156] = b" " * 8
    block[156:157] = draw(TYPE)
    block[157:257] = field(draw(NAME), 100)
    block[257:265] = draw(st.sampled_from([b"ustar\x0000", b"ustar  \0"]))
    block[345:500] = field(draw(st.one_of(st.just(b""), NAME)), 155)
    for name in draw(st.lists(st.sampled_from(sorted(NUMBERS)), max_size=2)):
        offset, width = NUMBERS[name]
        block[offset:offset + width] = field(draw(ODD_NUMBER), width)
    checksum = draw(st.sampled_from(["unsigned", "signed", "none"]))
    return with_checksum(bytes(block), signed=checksum == "signed") if checksum != "none" else (
        bytes(block))


@given(headers())
@example(bytes(BLOCK))
def test_generated_headers_read_as_tarfile_reads_them(block: bytes) -> None:
    assert_agrees(block)


@given(st.binary(min_size=BLOCK, max_size=BLOCK))
def test_garbage_is_left_to_tarfile(block: bytes) -> None:
    assert_agrees(block)


MEMBER_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE,
                                tarfile.SYMTYPE, tarfile.LNKTYPE])
PORTABLE = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=90)


@given(
    name=PORTABLE, prefix=st.one_of(st.just(""), PORTABLE), type_=MEMBER_TYPES,
    mode=st.integers(0, 0o7777), size=st.integers(0, 8**11 - 1),
    mtime=st.integers(0, 8**11 - 1), linkname=PORTABLE,
    fmt=st.sampled_from([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT]),
    position=st.integers(0, BLOCK - 1), byte=st.integers(0, 255),
)
def test_headers_tar_writers_make_take_the_fast_path(
    name: str, prefix: str, type_: bytes, mode: int, size: int, mtime: int, linkname: str,
    fmt: int, position: int, byte: int,
) -> None:
    """Headers as tarfile writes them (GNU tar's differ only in fields tarfile ignores) are read
    by parse_plain, and any single damaged byte either still reads as tarfile reads it or goes
    to tarfile."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = type_, mode, mtime, linkname
    info.size = size if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    block = info.tobuf(fmt, "utf-8", "surrogateescape")
    if prefix:
        block = with_checksum(block[:345] + field(prefix.encode(), 155) + block[500:])
    assert parse_plain(block) is not None
    assert_agrees(block)
    damaged = block[:position] + bytes([byte]) + block[position + 1:]
    assert_agrees(damaged)
    assert_agrees(with_checksum(damaged))


def plain_header(name: str, type_: bytes, prefix: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = type_, 1000 if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    block = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    return with_checksum(put(block, 345, field(prefix.encode(), 155)))


@pytest.mark.parametrize("number", ODD_NUMBERS)
@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_odd_number_fields(name: str, number: bytes) -> None:
    offset, width = NUMBERS[name]
    assert_agrees(with_checksum(put(plain_header("f", tarfile.REGTYPE), offset,
                                    field(number, width))))


@pytest.mark.parametrize("char", [b"8", b"9", b" ", b"\0", b"x", b"\xff"])
@pytest.mark.parametrize("at", [0, -2, -1])
@pytest.mark.parametrize("name", [*sorted(NUMBERS), "chksum"])
def test_odd_bytes_in_full_width_fields(name: str, at: int, char: bytes) -> None:
    """Number fields as writers fill them (all digits, then a NUL), with one byte changed."""
    offset, width = NUMBERS.get(name, (148, 8))
    block = plain_header("f", tarfile.REGTYPE)
    digits = bytearray(block[offset:offset + width] if name != "chksum" else b"0000000\0")
    digits[at] = char[0]
    assert_agrees(put(block, offset, bytes(digits)))
    if name != "chksum":
        assert_agrees(with_checksum(put(block, offset, bytes(digits))))


@pytest.mark.parametrize("name", ["", "/", "d", "d/", "d//"])
@pytest.mark.parametrize("prefix", ["", "p", "p/", "/"])
@pytest.mark.parametrize("type_", [tarfile.DIRTYPE, tarfile.AREGTYPE, tarfile.REGTYPE])
def test_names_and_prefixes(name: str, prefix: str, type_: bytes) -> None:
    block = plain_header("x", type_, prefix)
    block = with_checksum(put(block, 0, field(name.encode(), 100)))
    assert parse_plain(block) is not None
    assert_agrees(block)


@given(st.binary(max_size=2 * BLOCK) | st.integers(0, 2 * BLOCK).map(lambda n: b"\xff" * n))
def test_byte_sum_is_sum(data: bytes) -> None:
    """Exact for every length, all-0xff data included (where adler32's modulus would wrap)."""
    assert byte_sum(data) == sum(data)


def gnu_incremental_header(name: str, type_: bytes, uid: int = 0) -> bytes:
    """A GNU-format header as ``tar -G`` writes it: atime and ctime where ustar has the prefix."""
    info = tarfile.TarInfo(name)
    info.type, info.uid, info.mtime = type_, uid, 1_700_000_000
    info.size = 3 if type_ == tarfile.REGTYPE else 0
    block = info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")
    return with_checksum(put(block, 345, b"15305310750\0" * 2))


@pytest.mark.parametrize("type_", [tarfile.REGTYPE, tarfile.DIRTYPE])
def test_gnu_incremental_times_are_no_name_prefix(type_: bytes) -> None:
    block = gnu_incremental_header("dir/run.sh", type_)
    header = parse_plain(block)
    assert header is not None and header.name == "dir/run.sh"
    assert_agrees(block)
    # A base-256 uid sends the header to tarfile: it must read the name the same way.
    big = gnu_incremental_header("dir/run.sh", type_, uid=8**8)
    assert parse_plain(big) is None
    read = tarfile_reads(big)
    assert read is not None and read[0] == "dir/run.sh"


def test_gnu_incremental_times_are_no_prefix_where_fromtarfile_calls_frombuf_privately(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Newer CPython releases (3.13.5 among them) parse a header in ``TarInfo._frombuf``, which
    ``fromtarfile`` calls directly, not through ``frombuf``: where tarfile is older, it is laid
    out so here, and TarHeader must still read the name."""
    plain = tarfile.TarInfo.frombuf.__func__  # type: ignore[attr-defined]

    def private(cls: type[tarfile.TarInfo], buf: bytes, encoding: str, errors: str,
                dircheck: bool = True) -> tarfile.TarInfo:
        return plain(cls, buf, encoding, errors)  # type: ignore[no-any-return]

    def fromtarfile(cls: type[tarfile.TarInfo], source: _Source) -> tarfile.TarInfo:
        buf = source.fileobj.read(BLOCK)
        obj = cls._frombuf(buf, source.encoding, source.errors)  # type: ignore[attr-defined]
        obj.offset = source.fileobj.tell() - BLOCK
        return obj._proc_member(source)  # type: ignore[attr-defined,no-any-return]

    if not hasattr(tarfile.TarInfo, "_frombuf"):  # as 3.11's: laid out as 3.13's is
        monkeypatch.setattr(tarfile.TarInfo, "_frombuf", classmethod(private), raising=False)
        monkeypatch.setattr(tarfile.TarInfo, "fromtarfile", classmethod(fromtarfile))
    big = gnu_incremental_header("dir/run.sh", tarfile.REGTYPE, uid=8**8)
    read = tarfile_reads(big)
    assert read is not None and read[0] == "dir/run.sh"
