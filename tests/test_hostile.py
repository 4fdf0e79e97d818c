"""Hostile and malformed archives: refused with a typed error, nothing written anywhere.

Complements test_extract_safety.py (absolute names, '..', devices, simple symlink escapes):
this file covers the less obvious tricks, the guard's case-insensitive mode, bombs and limits,
and damaged containers and manifests. Every extraction runs in a sandbox directory that must
hold nothing but the archive afterwards.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import stat
import struct
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    CorruptArchiveError,
    DestinationError,
    ExtractionLimits,
    IntegrityError,
    LimitExceededError,
    UnsafeMemberError,
    UnsupportedFormatError,
)
from arcman._extract import commit as commit_module
from arcman._extract import safety
from arcman._extract.members import HARDLINK, SPECIAL, Member
from arcman._extract.safety import (
    MAX_LINK_CHAIN,
    MemberGuard,
    is_plain_name,
    normalize_by_rules,
    normalize_name,
)
from arcman._manifest import DIR, FILE, MANIFEST_NAME, SYMLINK
from helpers import run_arcman

# ---------------------------------------------------------------- helpers


def guard(case_insensitive: bool = False, zip_rules: bool = False, **limits: int) -> MemberGuard:
    return MemberGuard(
        ExtractionLimits(**limits), case_insensitive=case_insensitive, zip_rules=zip_rules
    )


def m(name: str, kind: str = FILE, size: int = 0, target: str | None = None) -> Member:
    return Member(name, kind, size, 0o644, 0, target)


def make_tar(path: Path, members: list[tuple[str, bytes, str | bytes]], mode: str = "w") -> Path:
    """members: (name, tar type, data for files / linkname for links)."""
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o644
            if kind == tarfile.REGTYPE:
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                    assert isinstance(payload, str)
                    info.linkname = payload
                tar.addfile(info)
    return path


def refused(
    archive: Path, error: type[Exception] = UnsafeMemberError, config: ArchiveConfig | None = None
) -> Exception:
    """Extracting must raise ``error``, and leave nothing but the archive (and sidecars)."""
    box = archive.parent
    before = sorted(p.name for p in box.iterdir())
    dest = box / "dest"
    with (
        ArchiveManager(config or ArchiveConfig()) as manager,
        pytest.raises(error) as info,
    ):
        manager.extract_archive(archive, dest)
    assert sorted(p.name for p in box.iterdir()) == before
    return info.value


@pytest.fixture
def box(tmp_path: Path) -> Path:
    path = tmp_path / "box"
    path.mkdir()
    return path


@pytest.fixture
def arcman_tar(tmp_path: Path, sample_tree: Path) -> Path:
    archive = tmp_path / "a.tar"
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as mgr:
        mgr.create_archive(sample_tree, archive)
    return archive


Edit = Callable[[tarfile.TarInfo, bytes], "bytes | None"]
Lines = list[dict[str, object]]


def rewrite_tar(src: Path, dst: Path, edit: Edit) -> Path:
    """Copy a tar member by member; ``edit`` returns the new data, or None to drop a member."""
    with tarfile.open(src) as old, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as new:
        for info in old.getmembers():
            f = old.extractfile(info)
            data = f.read() if f is not None else b""
            changed = edit(info, data)
            if changed is None:
                continue
            info.size = len(changed)
            new.addfile(info, io.BytesIO(changed) if info.isreg() else None)
    return dst


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        "a\\..\\..\\etc\\passwd",  # Windows separators around '..'
        "a/..\\..\\x",  # mixed separators
        "\\\\server\\share\\x",  # UNC
        "\\x",
        "C:x",
        "a/b\x00c",
        "a/" + "n" * 256,
        "/".join(["d" * 200] * 21),  # 4220 bytes: over PATH_MAX
    ],
)
def test_names_refused(name: str) -> None:
    with pytest.raises(UnsafeMemberError):
        guard().check(m(name))


@given(st.text(alphabet="./\\:aC\x00é", max_size=12), st.booleans())
@settings(max_examples=500, deadline=None)
def test_accepted_names_stay_inside(name: str, zip_rules: bool) -> None:
    """Whatever the name, an accepted one is a clean relative path that cannot leave the root."""
    try:
        path = normalize_name(name, zip_rules=zip_rules)
    except UnsafeMemberError:
        return
    if path is None:
        return
    parts = path.split("/")
    assert "" not in parts and "." not in parts and "\x00" not in path
    assert ".." not in path.replace("\\", "/").split("/")
    root = "/dest"
    assert os.path.normpath(os.path.join(root, path)).startswith(root + "/")


@given(
    st.one_of(
        st.text(alphabet="./\\:aC\x00\n é", max_size=12),
        st.lists(st.sampled_from(["a", "b" * 120, ".", "..", "...", "", "x:", "c\\d"]),
                 max_size=6).map("/".join),
    ),
    st.booleans(),
)
@settings(max_examples=1000, deadline=None)
def test_plain_names_are_what_the_rules_accept_unchanged(name: str, zip_rules: bool) -> None:
    """The shortcut never admits a name that the rules would refuse or rewrite."""
    if is_plain_name(name):
        assert normalize_by_rules(name, zip_rules=zip_rules) == name


@pytest.mark.parametrize("name", ["a", "a/b.txt", "...", "a/..b/c", "x" * 255, "sp ace/ok"])
def test_common_names_take_the_shortcut(name: str) -> None:
    assert is_plain_name(name)


@pytest.mark.parametrize(
    "name", ["", ".", "a/./b", "a//b", "a/", "/a", "a/..", "..", "C:x", "a\\b", "é", "x" * 256]
)
def test_other_names_go_through_the_rules(name: str) -> None:
    assert not is_plain_name(name)


def test_backslash_is_a_plain_character_in_tar_but_refused_in_zip() -> None:
    assert guard().check(m("odd\\name")) == "odd\\name"
    with pytest.raises(UnsafeMemberError, match="backslash"):
        guard(zip_rules=True).check(m("odd\\name"))


def test_name_limits_are_bytes_not_characters() -> None:
    assert normalize_name("é" * 127, zip_rules=False) == "é" * 127  # 254 bytes
    with pytest.raises(UnsafeMemberError, match="longer"):
        normalize_name("é" * 128, zip_rules=False)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("README", "readme"),
        ("caf\u00e9", "cafe\u0301"),  # NFC and NFD spellings of the same name
        ("Dir/x", "dir/y"),  # clash through a parent directory
        ("STRASSE", "straße"),  # full case folding
    ],
)
def test_case_insensitive_mode_refuses_names_that_fold_together(first: str, second: str) -> None:
    g = guard(case_insensitive=True)
    g.check(m(first))
    with pytest.raises(UnsafeMemberError, match="case-insensitive"):
        g.check(m(second))
    sensitive = guard(case_insensitive=False)
    sensitive.check(m(first))
    assert sensitive.check(m(second)) is not None


@given(st.lists(st.text(alphabet="aAbBéE\u0301/", min_size=1, max_size=6), max_size=8))
@settings(max_examples=200, deadline=None)
def test_case_insensitive_guard_never_lets_two_folded_names_through(names: list[str]) -> None:
    """Whatever the names, no two accepted paths fold to the same key."""
    import unicodedata

    g = guard(case_insensitive=True)
    accepted: dict[str, str] = {}
    for name in names:
        try:
            path = g.check(m(name, DIR))
        except UnsafeMemberError:
            continue
        if path is None:
            continue
        key = unicodedata.normalize("NFC", path).casefold()
        assert accepted.setdefault(key, path) == path


# ---------------------------------------------------------------- duplicates and links


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (m("x"), m("x")),  # file replacing a file
        (m("x", DIR), m("x")),  # file replacing a directory
        (m("x", SYMLINK, target="y"), m("x")),  # file replacing a symlink
        (m("x"), m("x", DIR)),  # directory replacing a file
        (m("x"), m("x", SYMLINK, target="y")),  # symlink replacing a file
        (m("a/x"), m("a/./x")),  # the same path spelled differently
    ],
)
def test_duplicate_members_refused(first: Member, second: Member) -> None:
    g = guard()
    g.check(first)
    with pytest.raises(UnsafeMemberError, match="duplicate"):
        g.check(second)


def test_repeated_directory_is_allowed() -> None:
    g = guard()
    g.check(m("d", DIR))
    assert g.check(m("d/", DIR)) == "d"


@pytest.mark.parametrize("link_kind", [SYMLINK, HARDLINK])
def test_member_written_through_a_link_refused(link_kind: str) -> None:
    g = guard()
    g.check(m("sub", DIR))
    g.check(m("sub/f"))
    g.check(m("l", link_kind, target="sub" if link_kind == SYMLINK else "sub/f"))
    with pytest.raises(UnsafeMemberError, match="through"):
        g.check(m("l/evil"))


@pytest.mark.parametrize(
    ("target", "reason"),
    [("/etc", "absolute"), ("../../x", "outside"), ("a/../../../x", "outside"), ("", "empty")],
)
def test_symlink_targets_refused(target: str, reason: str) -> None:
    with pytest.raises(UnsafeMemberError, match=reason):
        guard().check(m("d/l", SYMLINK, target=target))


@pytest.mark.parametrize("target", ["../outside", "/etc/passwd", "later", "dir", "link"])
def test_hardlinks_only_to_earlier_files(target: str) -> None:
    g = guard()
    g.check(m("dir", DIR))
    g.check(m("link", SYMLINK, target="dir"))
    with pytest.raises(UnsafeMemberError):
        g.check(m("h", HARDLINK, target=target))
    g.check(m("later"))


def test_special_members_refused() -> None:
    with pytest.raises(UnsafeMemberError, match="special"):
        guard().check(Member("p", SPECIAL, 0, 0o644, 0, detail="fifo"))


@pytest.mark.parametrize(
    "chain",
    [
        # Each link is harmless alone; together t resolves to the destination's parent.
        [("s", tarfile.SYMTYPE, "."), ("t", tarfile.SYMTYPE, "s/..")],
        [("a", tarfile.DIRTYPE, b""), ("a/up", tarfile.SYMTYPE, ".."),
         ("b", tarfile.SYMTYPE, "a/up/a/up/..")],
        [("x", tarfile.SYMTYPE, "y/.."), ("y", tarfile.SYMTYPE, "."),
         ("z", tarfile.SYMTYPE, "x/..")],
    ],
)
def test_symlink_chains_that_escape_only_together(box: Path, chain: list) -> None:  # type: ignore[type-arg]
    refused(make_tar(box / "a.tar", chain), UnsafeMemberError)


def test_hardlink_then_write_through_it_leaves_nothing(box: Path) -> None:
    refused(
        make_tar(
            box / "a.tar",
            [("f", tarfile.REGTYPE, b"x"), ("h", tarfile.LNKTYPE, "f"),
             ("h", tarfile.REGTYPE, b"overwrite")],
        )
    )


def test_hardlinks_to_outside_refused_in_an_archive(box: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    refused(make_tar(box / "a.tar", [("h", tarfile.LNKTYPE, str(victim))]))
    refused(make_tar(box / "b.tar", [("h", tarfile.LNKTYPE, "../victim")]))
    assert victim.read_text() == "keep"
    assert victim.stat().st_nlink == 1


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_special_tar_members_refused(box: Path, kind: bytes) -> None:
    refused(make_tar(box / "a.tar", [("ok", tarfile.REGTYPE, b"x"), ("dev", kind, b"")]))


def test_zip_mode_without_file_type_is_a_regular_file(box: Path) -> None:
    """Python's zipfile.writestr records permission bits only (no S_IFREG): a plain file."""
    with zipfile.ZipFile(box / "a.zip", "w") as z:
        z.writestr("plain", b"data")
    with ArchiveManager() as manager:
        manager.extract_archive(box / "a.zip", box / "dest")
    assert (box / "dest" / "plain").read_bytes() == b"data"


def test_zip_fifo_member_is_a_regular_file(box: Path) -> None:
    """Info-ZIP records S_IFIFO for data read from a pipe (``cmd | zip``): still a file's data."""
    with zipfile.ZipFile(box / "a.zip", "w") as z:
        info = zipfile.ZipInfo("-")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o600) << 16
        z.writestr(info, b"piped data")
    with ArchiveManager() as manager:
        manager.extract_archive(box / "a.zip", box / "dest")
    assert (box / "dest" / "-").read_bytes() == b"piped data"
    assert stat.S_IMODE((box / "dest" / "-").stat().st_mode) == 0o600


@pytest.mark.parametrize("fmt", [stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK])
def test_special_zip_members_refused(box: Path, fmt: int) -> None:
    archive = box / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("special")
        info.create_system = 3
        info.external_attr = (fmt | 0o644) << 16
        z.writestr(info, b"")
    error = refused(archive)
    # The reason names the kind (it was "special file refused ()").
    assert "()" not in str(error)
    assert ("socket" if fmt == stat.S_IFSOCK else "device file") in str(error)


def test_zip_symlink_with_a_huge_target_refused_without_reading_it(box: Path) -> None:
    archive = box / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("l")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, b"a/" * 2_000_000)
    refused(archive)


def test_modes_masked_like_the_data_filter(box: Path) -> None:
    with tarfile.open(box / "a.tar", "w") as tar:
        for name, kind, mode in [
            ("d", tarfile.DIRTYPE, 0o3777),
            ("d/suid", tarfile.REGTYPE, 0o6777),
            ("d/ro", tarfile.REGTYPE, 0o400),
            ("sticky", tarfile.DIRTYPE, 0o1777),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with ArchiveManager() as manager:
        manager.extract_archive(box / "a.tar", box / "dest")
    names = ["d", "d/suid", "d/ro", "sticky"]
    modes = {p: (box / "dest" / p).stat().st_mode & 0o7777 for p in names}
    assert modes == {"d": 0o755, "d/suid": 0o755, "d/ro": 0o600, "sticky": 0o755}


def test_refusal_waits_for_pending_writes_before_removing_staging(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow pool writes still pending when a later member is refused must not land in (and
    so keep alive) a staging tree that is being removed."""
    from arcman._extract import extract
    from arcman._extract.stage import StagingTree

    real_write, real_remove = StagingTree._write, extract.remove_tree
    writing = []
    removed_while_writing = []

    def slow_write(self: StagingTree, *args: Any) -> bytes:
        writing.append(1)
        try:
            time.sleep(0.05)
            return real_write(self, *args)
        finally:
            writing.pop()

    def checked_remove(path: str) -> None:
        removed_while_writing.append(len(writing))
        real_remove(path)

    monkeypatch.setattr(StagingTree, "_write", slow_write)
    monkeypatch.setattr(extract, "remove_tree", checked_remove)
    members = [(f"f{i}", tarfile.REGTYPE, b"x") for i in range(8)]
    refused(make_tar(box / "a.tar", [*members, ("dev", tarfile.FIFOTYPE, b"")]),
            config=ArchiveConfig(thread_pool_size=2))
    assert removed_while_writing == [0]


# ---------------------------------------------------------------- bombs and limits


def test_default_limits_suit_a_small_board() -> None:
    limits = ExtractionLimits()
    assert limits.max_total_size is not None and limits.max_total_size <= 4 * 2**30
    assert limits.max_member_size is not None and limits.max_member_size <= limits.max_total_size
    assert limits.max_members is not None and limits.max_members <= 200_000
    assert limits.max_compression_ratio is not None and limits.max_compression_ratio <= 1000


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        ({"max_members": 3}, "more than 3 members"),
        ({"max_member_size": 800}, "over the 800 limit"),
        ({"max_total_size": 2500}, "2500 byte limit"),
    ],
)
def test_limits_refuse(box: Path, limits: dict[str, int], match: str) -> None:
    archive = make_tar(box / "a.tar", [(f"f{i}", tarfile.REGTYPE, b"x" * 900) for i in range(4)])
    err = refused(archive, LimitExceededError, ArchiveConfig(limits=ExtractionLimits(**limits)))
    assert match in str(err)
    with ArchiveManager(ArchiveConfig(limits=ExtractionLimits(None, None, None, None))) as mgr:
        mgr.extract_archive(archive, box / "dest")  # raising the limits lets it through


def test_a_limit_is_reported_as_a_limit_and_the_manifest_as_a_member(
    box: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--max-members N` on an arcman archive of N files said "unsafe member
    '.arcman-manifest.jsonl': more than N members": neither unsafe, nor a member to the user."""
    from arcman._cli import main

    archive = box / "a.tar.gz"
    with ArchiveManager() as manager:
        members = len(manager.create_archive(sample_tree, archive).files)
    extract = ["extract", str(archive), "-C", str(box / "d1"), "--max-members", str(members)]
    assert main(extract) == 3
    err = capsys.readouterr().err
    assert err == (
        "arcman: error: over an extraction limit at '.arcman-manifest.jsonl': more than "
        f"{members} members (the manifest arcman adds counts as one)\n"
    )
    assert not (box / "d1").exists()
    extract = ["extract", str(archive), "-C", str(box / "d2"), "--max-members", str(members + 1)]
    assert main(extract) == 0


def test_cli_raises_and_lifts_limits(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from arcman._cli import main

    archive = make_tar(box / "a.tar", [(f"f{i}", tarfile.REGTYPE, b"x") for i in range(4)])
    assert main(["extract", str(archive), "-C", str(box / "d1"), "--max-members", "3"]) == 3
    assert "more than 3 members" in capsys.readouterr().err
    assert main(["verify", str(archive), "--max-members", "0"]) == 0  # no limit, as in the config
    assert main(["verify", str(archive), "--max-members", "-1"]) == 2  # a usage error
    assert main(["extract", str(archive), "-C", str(box / "d2"), "--no-limits"]) == 0
    assert main(["verify", str(archive), "--no-limits", "--max-members", "3"]) == 3


@pytest.mark.parametrize("ext", ["tar.gz", "zip"])
def test_compression_ratio_bomb_refused(
    box: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(safety, "RATIO_GRACE", 1024 * 1024)
    zeros = bytes(4 * 1024 * 1024)
    if ext == "zip":
        archive = box / "bomb.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(4):
                z.writestr(f"z{i}", zeros)
    else:
        archive = make_tar(box / "bomb.tar.gz", [("z", tarfile.REGTYPE, zeros * 2)], "w:gz")
    err = refused(archive, LimitExceededError)
    assert "compression ratio" in str(err)


def test_huge_declared_member_refused_before_reading(box: Path) -> None:
    """A header claiming 2**60 bytes is a limit error, not an attempt to read them."""
    header = tarfile.TarInfo("huge")
    header.size = 2**60
    raw = header.tobuf(tarfile.GNU_FORMAT) + bytes(1024)
    (box / "a.tar").write_bytes(raw)
    refused(box / "a.tar", LimitExceededError)


def test_overlapping_zip_entries_refused(box: Path) -> None:
    """Two central-directory entries sharing one local header and its data (a zip bomb)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a", bytes(100_000))
    data = buf.getvalue()
    eocd = data.rindex(b"PK\x05\x06")
    cd_offset = struct.unpack_from("<I", data, eocd + 16)[0]
    entry = data[cd_offset:eocd]
    twin = entry.replace(b"a", b"b", 1) if entry.endswith(b"a") else entry[:-1] + b"b"
    cd = entry + twin
    end = bytearray(data[eocd:])
    struct.pack_into("<HHII", end, 8, 2, 2, len(cd), cd_offset)
    (box / "a.zip").write_bytes(data[:cd_offset] + cd + bytes(end))
    err = refused(box / "a.zip", CorruptArchiveError)
    assert "overlaps" in str(err)


def test_not_enough_free_space_refused_before_writing(
    box: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for ext in ("tar.gz", "zip"):
        archive = box / f"a.{ext}"
        with ArchiveManager() as manager:
            manager.create_archive(sample_tree, archive)

    real = os.statvfs

    def tiny(path: str) -> os.statvfs_result:
        st = real(path)
        return os.statvfs_result((*st[:4], 10, *st[5:]))  # 10 blocks available

    monkeypatch.setattr(commit_module.os, "statvfs", tiny)
    for ext, origin in (("tar.gz", repr(f"{box}/a.tar.gz.meta")), ("zip", "the zip's directory")):
        err = refused(box / f"a.{ext}", DestinationError)
        # Named: a wrong .meta (its archive's size, another expanded size) can be removed.
        assert "not enough space" in str(err) and f"(as {origin} says)" in str(err)


# ---------------------------------------------------------------- damaged containers


def test_tar_cut_at_a_member_boundary_refused(box: Path, arcman_tar: Path) -> None:
    data = arcman_tar.read_bytes()
    with tarfile.open(arcman_tar) as tar:
        manifest = tar.getmember(MANIFEST_NAME)
    (box / "a.tar").write_bytes(data[: manifest.offset])
    assert "end-of-archive" in str(refused(box / "a.tar", CorruptArchiveError))


def test_tar_truncated_inside_data_refused(box: Path, arcman_tar: Path) -> None:
    with tarfile.open(arcman_tar) as tar:
        big = tar.getmember("sub/big.bin")
    (box / "a.tar").write_bytes(arcman_tar.read_bytes()[: big.offset_data + 1000])
    refused(box / "a.tar", CorruptArchiveError)


@pytest.mark.parametrize(
    ("field_offset", "value"),
    [
        (148, b"0000000\x00"),  # wrong header checksum
        (124, b"\xff" + b"\xff" * 11),  # negative base-256 size
        (124, b"zzzzzzzzzzz\x00"),  # garbage size
    ],
)
def test_bad_tar_headers_refused(box: Path, field_offset: int, value: bytes) -> None:
    raw = bytearray(make_tar(box / "src.tar", [("a", tarfile.REGTYPE, b"hello")]).read_bytes())
    raw[field_offset : field_offset + len(value)] = value
    if field_offset != 148:  # keep the checksum right so the bad field itself is judged
        raw[148:156] = b" " * 8
        raw[148:156] = b"%06o\x00 " % sum(raw[:512])
    (box / "src.tar").unlink()
    (box / "a.tar").write_bytes(bytes(raw))
    refused(box / "a.tar", CorruptArchiveError)


def test_damaged_later_header_is_not_taken_for_the_end(box: Path) -> None:
    """tarfile ends iteration at a damaged header; a bad checksum followed by zero padding
    must not pass for a shorter archive."""
    raw = bytearray(
        make_tar(box / "src.tar", [("a", tarfile.REGTYPE, b"hi"), ("b", tarfile.REGTYPE, b"")])
        .read_bytes()
    )
    (box / "src.tar").unlink()
    second = 1024  # after the first header and its data block; only zeros follow the second
    assert raw[second : second + 1] == b"b"
    raw[second + 148 : second + 156] = b"0000000\x00"
    (box / "a.tar").write_bytes(bytes(raw))
    assert "damaged tar header" in str(refused(box / "a.tar", CorruptArchiveError))


def test_gnu_and_pax_extension_headers_read(box: Path, tmp_path: Path) -> None:
    """Long names and link targets in GNU ('L'/'K') and pax headers, parsed by tarfile's own
    header code, with the members' data read straight from the stream."""
    long_dir = "d" * 120
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        archive = box / f"a{fmt}.tar"
        with tarfile.open(archive, "w", format=fmt) as tar:
            for name, payload in ((f"{long_dir}/f", b"x" * 5000), ("g", b"")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            link = tarfile.TarInfo("s")
            link.type, link.linkname = tarfile.SYMTYPE, f"{long_dir}/f"
            tar.addfile(link)
        dest = tmp_path / f"out{fmt}"
        with ArchiveManager() as manager:
            manager.extract_archive(archive, dest)
        assert (dest / long_dir / "f").read_bytes() == b"x" * 5000
        assert (dest / "g").read_bytes() == b""
        assert (dest / "s").read_bytes() == b"x" * 5000


def test_broken_zip_central_directory_refused(box: Path, sample_tree: Path) -> None:
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as mgr:
        mgr.create_archive(sample_tree, box / "good.zip")
    data = (box / "good.zip").read_bytes()
    (box / "good.zip").unlink()
    eocd = data.rindex(b"PK\x05\x06")
    broken = bytearray(data)
    struct.pack_into("<I", broken, eocd + 16, 7)  # central directory offset points at garbage
    (box / "a.zip").write_bytes(bytes(broken))
    refused(box / "a.zip", CorruptArchiveError)


@pytest.mark.parametrize("garbage", [b"garbage!", b"\x1f\x8b\x08garbage"])
def test_gzip_with_trailing_garbage_refused(box: Path, garbage: bytes) -> None:
    tar = make_tar(box / "a.tar", [("a", tarfile.REGTYPE, b"hello")]).read_bytes()
    (box / "a.tar").unlink()
    (box / "a.tar.gz").write_bytes(gzip.compress(tar) + garbage)
    refused(box / "a.tar.gz", CorruptArchiveError)


def test_concatenated_gzip_members_read_as_one_stream(box: Path, tmp_path: Path) -> None:
    """As gzip and pigz read them: members back to back, zero padding between them allowed;
    a member cut short is refused."""
    tar = make_tar(box / "a.tar", [("a", tarfile.REGTYPE, b"hello" * 1000)]).read_bytes()
    (box / "a.tar").unlink()
    joined = gzip.compress(tar[:700]) + bytes(10) + gzip.compress(tar[700:])
    (box / "a.tar.gz").write_bytes(joined)
    with ArchiveManager() as manager:
        manager.extract_archive(box / "a.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "a").read_bytes() == b"hello" * 1000
    (box / "a.tar.gz").write_bytes(joined[:-9])
    refused(box / "a.tar.gz", CorruptArchiveError)


# ---------------------------------------------------------------- manifests


def test_archive_without_manifest_verifies_as_container(box: Path, arcman_tar: Path) -> None:
    archive = rewrite_tar(
        arcman_tar, box / "a.tar", lambda i, d: None if i.name == MANIFEST_NAME else d
    )
    with ArchiveManager() as manager:
        assert manager.verify_archive(archive).verification == "container"
        assert manager.extract_archive(archive, box / "dest").verification == "container"


def test_arcman_tar_with_its_tail_zeroed_refused(box: Path, arcman_tar: Path) -> None:
    """Zeroing the last members and the manifest leaves a valid-looking shorter tar: the pax
    global header at the start says a manifest was due, so it is refused all the same."""
    with tarfile.open(arcman_tar) as tar:
        cut = tar.getmember("sub/deep/zero").offset
    data = arcman_tar.read_bytes()
    (box / "a.tar").write_bytes(data[:cut] + bytes(len(data) - cut))
    assert "missing" in str(refused(box / "a.tar", IntegrityError))


@pytest.mark.parametrize(("keep_comment", "refuses"), [(True, True), (False, False)])
def test_zip_without_its_manifest(
    box: Path, sample_tree: Path, keep_comment: bool, refuses: bool
) -> None:
    """A zip that still announces its manifest (archive comment) but lacks it is refused; one
    rebuilt without manifest or announcement is an ordinary zip, checked as a container."""
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as mgr:
        mgr.create_archive(sample_tree, box / "full.zip")
    with zipfile.ZipFile(box / "full.zip") as old, zipfile.ZipFile(box / "a.zip", "w") as new:
        for info in old.infolist():
            if info.filename != MANIFEST_NAME:
                new.writestr(info, old.read(info))
        if keep_comment:
            new.comment = old.comment
    (box / "full.zip").unlink()
    if refuses:
        assert "missing" in str(refused(box / "a.zip", IntegrityError))
    else:
        with ArchiveManager() as manager:
            assert manager.verify_archive(box / "a.zip").verification == "container"


def test_zip_with_data_after_its_end_record_refused(box: Path, sample_tree: Path) -> None:
    """Zeroing the end record's counts and comment length left an 'empty zip' followed by
    garbage, which zipfile accepts (found by the fuzzer)."""
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as mgr:
        mgr.create_archive(sample_tree, box / "full.zip")
    raw = bytearray((box / "full.zip").read_bytes())
    (box / "full.zip").unlink()
    eocd = raw.rindex(b"PK\x05\x06")
    raw[eocd + 8 : eocd + 22] = bytes(14)
    (box / "a.zip").write_bytes(bytes(raw))
    assert "follows the end" in str(refused(box / "a.zip", CorruptArchiveError))


def test_empty_zip_extracts_to_an_empty_tree(box: Path) -> None:
    zipfile.ZipFile(box / "a.zip", "w").close()
    with ArchiveManager() as manager:
        assert manager.extract_archive(box / "a.zip", box / "dest").verification == "container"
    assert list((box / "dest").iterdir()) == []


def test_zip_entry_with_an_empty_name_refused(box: Path) -> None:
    with zipfile.ZipFile(box / "a.zip", "w") as z:
        z.writestr("x", b"data")
    raw = bytearray((box / "a.zip").read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    struct.pack_into("<H", raw, cd + 28, 0)  # the central directory's name length
    (box / "a.zip").write_bytes(bytes(raw))
    refused(box / "a.zip", CorruptArchiveError)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd")
def test_a_zip_refused_mid_member_is_closed_at_once(box: Path) -> None:
    """The member's stream in hand kept the archive's file open (zipfile counts its readers)
    for as long as the error was held, and then left it to the collector to close."""
    with zipfile.ZipFile(box / "a.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("first", b"fine")
        z.writestr("second", os.urandom(4096) * 64)
    raw = bytearray((box / "a.zip").read_bytes())
    raw[raw.index(b"second") + len(b"second") + 2000] ^= 0xFF  # inside its deflated data
    (box / "a.zip").write_bytes(bytes(raw))
    error = refused(box / "a.zip", CorruptArchiveError)
    assert error.__traceback__ is not None  # held: its frames hold what the run had in hand
    open_files = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
    assert str(box / "a.zip") not in open_files


def test_encrypted_zip_entry_refused(box: Path) -> None:
    with zipfile.ZipFile(box / "a.zip", "w") as z:
        z.writestr("x", b"data")
    raw = bytearray((box / "a.zip").read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 8] |= 1  # general-purpose flag bit 0: encrypted
    (box / "a.zip").write_bytes(bytes(raw))
    assert "encrypted" in str(refused(box / "a.zip", CorruptArchiveError))


@pytest.mark.parametrize(("method", "name"), [(9, "deflate64"), (98, "ppmd"), (99, "an unknown")])
def test_zip_member_of_an_unsupported_method_refused_by_name(
    box: Path, method: int, name: str
) -> None:
    """A method zipfile cannot read (7-Zip and Windows write deflate64) is named, and every
    command refuses it before a file is written: it is no damage (exit 2, not 3)."""
    with zipfile.ZipFile(box / "a.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("first", b"readable")
        z.writestr("second", b"data" * 100)
    raw = bytearray((box / "a.zip").read_bytes())
    for header, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        struct.pack_into("<H", raw, raw.rindex(header) + at, method)
    (box / "a.zip").write_bytes(bytes(raw))
    error = refused(box / "a.zip", UnsupportedFormatError)
    assert f"'second' is compressed with {name}" in str(error)
    with ArchiveManager() as manager:
        with pytest.raises(UnsupportedFormatError):
            manager.verify_archive(box / "a.zip")
        with pytest.raises(UnsupportedFormatError):
            list(manager.list_archive(box / "a.zip"))


def _edit_manifest(change: Callable[[Lines], Lines]
                   ) -> Callable[[tarfile.TarInfo, bytes], bytes]:
    def edit(info: tarfile.TarInfo, data: bytes) -> bytes:
        if info.name != MANIFEST_NAME:
            return data
        lines = [json.loads(line) for line in data.decode().splitlines()]
        return "".join(json.dumps(obj) + "\n" for obj in change(lines)).encode()

    return edit


def _add_missing(lines: Lines) -> Lines:
    ghost = {"path": "ghost", "type": "file", "size": 0, "mode": 420, "mtime": 0,
             "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    end = dict(lines[-1], count=len(lines) - 1)
    return [*lines[:-1], ghost, end]


def _wrong_digest(lines: Lines) -> Lines:
    for obj in lines:
        if obj.get("path") == "a.txt":
            obj["sha256"] = "0" * 64
    return lines


def _wrong_size(lines: Lines) -> Lines:
    for obj in lines:
        if obj.get("path") == "a.txt":
            obj["size"] = 5
    return lines


def _dropped_entry(lines: Lines) -> Lines:
    kept = [obj for obj in lines if obj.get("path") != "a.txt"]
    kept[-1] = dict(kept[-1], count=len(kept) - 2)
    return kept


def _retargeted(lines: Lines) -> Lines:
    for obj in lines:
        if obj.get("type") == "symlink":
            obj["target"] = "run.sh"
    return lines


@pytest.mark.parametrize(
    "change",
    [_add_missing, _wrong_digest, _wrong_size, _dropped_entry, _retargeted,
     lambda lines: lines[:-1],  # cut before its closing line
     lambda lines: [{"arcman_manifest": 99}, *lines[1:]]],
)
def test_manifest_that_disagrees_with_the_contents_refused(
    box: Path, arcman_tar: Path, change: Callable[[Lines], Lines]
) -> None:
    refused(rewrite_tar(arcman_tar, box / "a.tar", _edit_manifest(change)), IntegrityError)


@pytest.mark.parametrize(
    "garbage", [b"", b"not json\n", b"\xff\xfe\n{}\n", b"[1,2]\n{\"end\":true}\n"]
)
def test_malformed_manifest_refused(box: Path, arcman_tar: Path, garbage: bytes) -> None:
    archive = rewrite_tar(
        arcman_tar, box / "a.tar", lambda i, d: garbage if i.name == MANIFEST_NAME else d
    )
    refused(archive, IntegrityError)


def test_member_after_the_manifest_refused(box: Path, arcman_tar: Path) -> None:
    archive = rewrite_tar(arcman_tar, box / "a.tar", lambda i, d: d)
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo("late")
        tar.addfile(info, io.BytesIO(b""))
    refused(archive, IntegrityError)


def test_enospc_is_described(tmp_path: Path) -> None:
    from arcman._atomic import describe_os_error

    assert "no space" in describe_os_error(OSError(errno.ENOSPC, "full"), "x")


def test_header_number_out_of_range_refused(box: Path) -> None:
    """A base-256 mtime past 2**63 fits no file system (os.utime overflows): corrupt input."""
    with tarfile.open(box / "a.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("late.txt")
        info.mtime = 2**70
        tar.addfile(info, io.BytesIO(b""))
    assert "late.txt" in str(refused(box / "a.tar", CorruptArchiveError))
    with ArchiveManager() as manager, pytest.raises(CorruptArchiveError):
        manager.verify_archive(box / "a.tar")


# ---------------------------------------------------------------- bombs inside one member


def _written(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes the staging tree writes, counted as it writes them."""
    from arcman._extract import stage

    counted = [0]
    real = stage.write_all

    def write_all(fd: int, data: bytes | memoryview) -> None:
        counted[0] += len(data)
        real(fd, data)

    monkeypatch.setattr(stage, "write_all", write_all)
    return counted


@pytest.mark.parametrize("ext", ["tar.gz", "tar.zst"])
def test_ratio_is_checked_inside_one_large_member(
    box: Path, tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bomb is usually one member: it is refused within its first MiBs, not once it is all
    on the target's disk."""
    monkeypatch.setattr(safety, "RATIO_GRACE", 1024 * 1024)
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "z").write_bytes(bytes(24 * 1024 * 1024))
    archive = box / f"bomb.{ext}"
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as m:
        m.create_archive(tmp_path / "tree", archive)
    written = _written(monkeypatch)
    assert "compression ratio" in str(refused(archive, LimitExceededError))
    assert written[0] <= 8 * 1024 * 1024


def test_zip_bomb_member_followed_by_stored_data_refused_before_reading(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ratio of a zip counts the archive's bytes up to the member, not the whole file: a
    stored member after a bomb does not water it down."""
    monkeypatch.setattr(safety, "RATIO_GRACE", 1024 * 1024)
    archive = box / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("z", bytes(16 * 1024 * 1024))
        z.writestr("r", os.urandom(200 * 1024), compress_type=zipfile.ZIP_STORED)
    written = _written(monkeypatch)
    assert "compression ratio" in str(refused(archive, LimitExceededError))
    assert written[0] == 0


def test_manifest_counts_against_the_size_limits(box: Path) -> None:
    manifest = b"x" * (3 * 1024 * 1024)
    members = [("f", tarfile.REGTYPE, b"x"), (MANIFEST_NAME, tarfile.REGTYPE, manifest)]
    archive = make_tar(box / "m.tar.gz", members, "w:gz")
    config = ArchiveConfig(limits=ExtractionLimits(max_member_size=1024 * 1024))
    assert "limit" in str(refused(archive, LimitExceededError, config))


def test_manifest_line_is_never_read_whole() -> None:
    """A manifest of one endless line is refused a line's length in, not held in memory."""
    import tracemalloc

    from arcman._manifest import HEADER_LINE, read_manifest

    data = io.BytesIO(HEADER_LINE.encode() + b"x" * (32 * 1024 * 1024))
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match="line is over"):
            list(read_manifest(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def _pax_bomb(box: Path, size: int) -> Path:
    """A tar.gz whose first header is a pax header declaring ``size`` bytes of zeros."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, size
    archive = box / "pax.tar.gz"
    with gzip.open(archive, "wb", compresslevel=1) as out:
        out.write(header.tobuf(tarfile.USTAR_FORMAT))
        zeros = bytes(1024 * 1024)
        for _ in range(size // len(zeros)):
            out.write(zeros)
        out.write(tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    return archive


@pytest.mark.parametrize("gnu_long_name", [False, True])
def test_huge_extended_header_refused_without_reading_it(box: Path, gnu_long_name: bool) -> None:
    """tarfile reads a pax or GNU long-name header whole, whatever size it declares."""
    import tracemalloc

    archive = _pax_bomb(box, 48 * 1024 * 1024)
    if gnu_long_name:  # the same bomb as a GNU 'L' header
        raw = bytearray(gzip.decompress(archive.read_bytes()))
        raw[156:157] = tarfile.GNUTYPE_LONGNAME
        raw[148:156] = b"        "
        raw[148:155] = f"{sum(raw[:512]):06o}\0".encode()
        archive.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    tracemalloc.start()
    try:
        err = refused(archive, CorruptArchiveError, ArchiveConfig(enable_parallelization=False))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "extended headers are over" in str(err)
    assert peak < 24 * 1024 * 1024


# ---------------------------------------------------------------- typed errors for odd input


def test_pax_mtime_out_of_range_is_a_damaged_header(box: Path) -> None:
    for value in ("inf", "nan", "1e30"):
        archive = box / "a.tar"
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("f")
            info.pax_headers = {"mtime": value}
            tar.addfile(info, io.BytesIO(b""))
        assert "mtime" in str(refused(archive, CorruptArchiveError))
        archive.unlink()


def test_damaged_lzma_zip_member_is_corrupt(box: Path) -> None:
    archive = box / "a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_LZMA) as z:
        z.writestr("f", os.urandom(64 * 1024) * 4)
    data = bytearray(archive.read_bytes())
    for i in range(200, 400):
        data[i] ^= 0x55
    archive.write_bytes(bytes(data))
    refused(archive, CorruptArchiveError)


def _link_chain(archive: Path, length: int) -> Path:
    """l0 -> l1 -> ... -> l<length>, a file: a chain of ``length`` links."""
    links = [(f"l{i}", tarfile.SYMTYPE, f"l{i + 1}") for i in range(length)]
    return make_tar(archive, [*links, (f"l{length}", tarfile.REGTYPE, b"x")])


@pytest.mark.parametrize("length", [MAX_LINK_CHAIN + 1, 1200])
def test_symlink_chain_longer_than_a_kernel_resolves_refused(box: Path, length: int) -> None:
    """Refused by extract and verify alike, whatever the Python (3.13's realpath follows a chain
    of any length: it was 3.11's recursion limit that refused 1,200 links)."""
    archive = _link_chain(box / "a.tar", length)
    assert "chain of symlinks" in str(refused(archive, UnsafeMemberError))
    with ArchiveManager() as manager, pytest.raises(UnsafeMemberError, match="chain of symlinks"):
        manager.verify_archive(archive)


def test_symlink_chain_a_kernel_resolves_extracted(box: Path) -> None:
    archive = _link_chain(box / "a.tar", MAX_LINK_CHAIN)
    with ArchiveManager() as manager:
        manager.verify_archive(archive)
        manager.extract_archive(archive, box / "dest")
    assert (box / "dest" / "l0").read_bytes() == b"x"


def test_unreadable_sidecars(box: Path, tmp_path: Path) -> None:
    """A .sha256 that is not text is an integrity error; a .meta too deep for json is no size
    hint."""
    archive = make_tar(box / "a.tar", [("f", tarfile.REGTYPE, b"x")])
    (box / "a.tar.sha256").write_bytes(b"\xff\xfe" * 40)
    with ArchiveManager() as manager, pytest.raises(IntegrityError, match="sha256sum format"):
        manager.verify_archive_integrity(archive)
    (box / "a.tar.sha256").unlink()
    (box / "a.tar.meta").write_text("[" * 60000)
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "f").read_bytes() == b"x"


def test_sidecars_that_are_fifos_stall_nothing(box: Path, tmp_path: Path) -> None:
    """A FIFO in a sidecar's place made extract and verify wait for ever for a writer: a .meta
    that is no regular file is no size hint, a .sha256 an integrity error (exit 1)."""
    archive = make_tar(box / "a.tar", [("f", tarfile.REGTYPE, b"x")])
    os.mkfifo(box / "a.tar.meta")
    assert run_arcman("extract", archive, "-C", tmp_path / "out").returncode == 0
    assert (tmp_path / "out" / "f").read_bytes() == b"x"
    os.mkfifo(box / "a.tar.sha256")
    result = run_arcman("verify", archive)
    assert result.returncode == 1
    assert f"cannot read {archive}.sha256: not a regular file" in result.stderr


def test_a_sidecar_left_from_another_archive_is_no_size_hint(
    tmp_path: Path, sample_tree: Path
) -> None:
    """A .meta left beside a replaced archive (copied over by hand, or by another tool) claimed
    its own size, and extraction refused the archive for space it did not need."""
    import json

    archive, other = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        manager.create_archive(sample_tree, other, ArchiveConfig(compression_level=1))
    stale = json.loads((tmp_path / "b.tar.gz.meta").read_text())
    assert stale["compressed_size"] != archive.stat().st_size
    stale["uncompressed_size"] = 10**15
    (tmp_path / "a.tar.gz.meta").write_text(json.dumps(stale, indent=2))
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "big.bin").exists()


@pytest.mark.parametrize("line", ["header", "entry"])
def test_a_manifest_nested_too_deep_for_json_is_malformed(tmp_path: Path, line: str) -> None:
    """json raised RecursionError (before 3.14; 3.14's decodes it): "internal error", exit 70,
    in extract, verify and list."""
    import io as _io

    deep = b"[" * 30000 + b"]" * 30000 + b"\n"
    if line == "entry":
        lines = [{"arcman_manifest": 1}, {"end": True, "count": 1}]
        head, end = (json.dumps(x).encode() + b"\n" for x in lines)
        deep = head + deep + end
    archive = tmp_path / "deep.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.size = 2
        tar.addfile(info, _io.BytesIO(b"hi"))
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(deep)
        tar.addfile(info, _io.BytesIO(deep))
    with ArchiveManager() as manager:
        with pytest.raises(IntegrityError, match="malformed"):
            manager.verify_archive(archive)
        with pytest.raises(IntegrityError, match="malformed"):
            manager.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
