"""The lean ustar header builder must match tarfile's PAX_FORMAT output byte for byte."""

from __future__ import annotations

import tarfile

from hypothesis import given
from hypothesis import strategies as st

from arcman._create.headers import ustar_header
from arcman._create.tar_writer import _header

TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE])
ASCII = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=110)
ANY_TEXT = st.text(st.characters(blacklist_categories=["Cs"], min_codepoint=1), max_size=120)
NUMBER = st.integers(min_value=0, max_value=8**12)


def tarfile_header(
    name: str, type_: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
    linkname: str, uname: str, gname: str,
) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.mtime = type_, size, mode, mtime
    info.uid, info.gid, info.uname, info.gname, info.linkname = uid, gid, uname, gname, linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


@given(
    name=ASCII.filter(bool), type_=TYPES, mode=st.integers(0, 0o177777),
    ids=st.tuples(st.integers(0, 8**7 - 1), st.integers(0, 8**7 - 1)),
    size=st.integers(0, 8**11 - 1), mtime=st.integers(0, 8**11 - 1),
    linkname=ASCII, owners=st.tuples(ASCII, ASCII),
)
def test_common_case_is_byte_identical_to_tarfile(
    name: str, type_: bytes, mode: int, ids: tuple[int, int], size: int, mtime: int,
    linkname: str, owners: tuple[str, str],
) -> None:
    args = (name, type_, mode, *ids, size, mtime, linkname, *owners)
    fast = ustar_header(*args)
    fits = len(name) <= 100 and len(linkname) <= 100 and all(len(o) <= 32 for o in owners)
    assert (fast is not None) == fits
    assert _header(*args) == tarfile_header(*args)
    if fast is not None and type_ != tarfile.DIRTYPE:
        assert fast == tarfile_header(*args)


@given(
    name=ANY_TEXT.filter(bool), linkname=ANY_TEXT, uname=ANY_TEXT,
    size=NUMBER, mtime=NUMBER, uid=NUMBER,
)
def test_every_header_matches_tarfile(
    name: str, linkname: str, uname: str, size: int, mtime: int, uid: int
) -> None:
    args = (name, tarfile.SYMTYPE, 0o777, uid, 0, size, mtime, linkname, uname, "staff")
    assert _header(*args) == tarfile_header(*args)


def test_directories_get_a_trailing_slash_as_in_tarfile() -> None:
    header = _header("sub", tarfile.DIRTYPE, 0o755, 0, 0, 0, 0, "", "root", "root")
    assert header[:4] == b"sub/"
    assert header == tarfile_header("sub/", tarfile.DIRTYPE, 0o755, 0, 0, 0, 0, "", "root", "root")
