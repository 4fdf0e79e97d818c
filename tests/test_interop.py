"""Interop both ways: other tools read arcman's archives, arcman reads theirs."""

from __future__ import annotations

import calendar
import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from arcman import ArchiveManager, IntegrityError
from helpers import (
    FORMATS,
    MANIFEST,
    TAR_FORMATS,
    installed,
    snapshot,
    tar_dir,
    tar_file,
    tar_link,
    tool,
)

LONG = "n" * 150  # longer than ustar's 100 bytes: needs a pax or GNU header


@pytest.fixture
def tree(sample_tree: Path) -> Path:
    """The shared sample tree, plus names that need UTF-8 and pax/GNU long-name headers."""
    (sample_tree / "ünïcødé ✓.txt").write_text("unicode\n")
    (sample_tree / LONG).write_text("long\n")
    return sample_tree


def _expected(tree: Path) -> dict[str, tuple[object, ...]]:
    return snapshot(tree, mtimes=False)


def _extracted(dest: Path) -> dict[str, tuple[object, ...]]:
    return snapshot(dest, mtimes=False, skip=frozenset({MANIFEST}))


def _create(tree: Path, archive: Path) -> Path:
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


def _run(*argv: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in argv], check=True, cwd=cwd, capture_output=True)


@pytest.mark.parametrize("ext", TAR_FORMATS)
@pytest.mark.parametrize("reader", ["tar", "bsdtar"])
def test_tar_tools_extract_arcman_archives(
    tmp_path: Path, tree: Path, ext: str, reader: str
) -> None:
    if tool(reader) is None:
        pytest.skip(f"{reader} is not installed")
    if ext == ".tar.zst" and reader == "tar" and tool("zstd") is None:
        pytest.skip("GNU tar needs the zstd program for .tar.zst")
    archive = _create(tree, tmp_path / f"a{ext}")
    dest = tmp_path / "dest"
    dest.mkdir()
    _run(reader, "-xf", archive, "-C", dest)
    assert _extracted(dest) == _expected(tree)
    assert (dest / MANIFEST).is_file()


@pytest.mark.parametrize("ext", TAR_FORMATS)
def test_tarfile_extracts_arcman_archives(tmp_path: Path, tree: Path, ext: str) -> None:
    if ext == ".tar.zst" and sys.version_info < (3, 14):
        pytest.skip("tarfile reads zstd from Python 3.14")
    archive = _create(tree, tmp_path / f"a{ext}")
    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "dest", filter="data")
    assert _extracted(tmp_path / "dest") == _expected(tree)


@pytest.mark.parametrize("reader", ["unzip", "bsdtar"])
def test_zip_tools_extract_arcman_zips(tmp_path: Path, tree: Path, reader: str) -> None:
    if tool(reader) is None:
        pytest.skip(f"{reader} is not installed")
    archive = _create(tree, tmp_path / "a.zip")
    dest = tmp_path / "dest"
    dest.mkdir()
    if reader == "unzip":
        _run("unzip", "-q", "-t", archive)  # unzip's own CRC test
        _run("unzip", "-q", archive, "-d", dest)
    else:
        _run("bsdtar", "-xf", archive, "-C", dest)
    assert _extracted(dest) == _expected(tree)


DOS_LAST = calendar.timegm((2107, 12, 31, 23, 59, 58))  # the DOS fields' last second


@pytest.mark.parametrize(
    ("mtime", "stored"),
    [
        (1_700_000_000, 1_700_000_000),
        (3_000_000_000, 3_000_000_000),  # past 2038: the extended timestamp is unsigned
        (4_300_000_001, 4_300_000_000),  # past its 2106: the DOS time alone (2 s steps)
        (calendar.timegm((2108, 1, 1, 0, 0, 0)), DOS_LAST),  # past DOS's 2107: its last
        (2**40, DOS_LAST),
        (-86_400, 0),  # before 1970: the extended timestamp's first second
    ],
)
@pytest.mark.parametrize("reader", ["arcman", "unzip"])
def test_zip_mtimes_beyond_the_fields_are_clamped(
    tmp_path: Path, mtime: int, stored: int, reader: str
) -> None:
    """Zip's fields hold 1970-2106 (extended timestamp) and 1980-2107 (DOS): a file outside
    them is archived at the nearest time they hold, as arcman and unzip read it back."""
    if reader == "unzip" and tool("unzip") is None:
        pytest.skip("unzip is not installed")
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("x")
    os.utime(source / "f", (mtime, mtime))
    archive = _create(source, tmp_path / "a.zip")
    dest = tmp_path / "dest"
    if reader == "unzip":
        # unzip reads the DOS time as local time: UTC here, as arcman writes it.
        subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], check=True,
                       capture_output=True, env={**os.environ, "TZ": "UTC"})
        if stored > 0xFFFFFFFF:
            stored += 86_400  # unzip's DOS dates count 2100 as a leap year
    else:
        with ArchiveManager() as manager:
            manager.extract_archive(archive, dest)
    assert int((dest / "f").stat().st_mtime) == stored


@pytest.mark.parametrize("mtime", [-152_391_233, 1_796_575_421, 10_413_792_000])
def test_zip_ntfs_mtime_is_read(tmp_path: Path, mtime: int) -> None:
    """7-Zip keeps exact mtimes in an NTFS extra field (its DOS time is rounded up to even
    seconds and clamped to 1980-2107): arcman reads that, as 7-Zip does."""
    filetime = (mtime + 11_644_473_600) * 10_000_000
    ntfs = struct.pack("<HHIHHQQQ", 0x000A, 32, 0, 1, 24, filetime, filetime, filetime)
    info = zipfile.ZipInfo("f", date_time=(1980, 1, 1, 0, 0, 0))
    info.extra = ntfs
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as z:
        z.writestr(info, b"x")
    _arcman_extract(tmp_path / "a.zip", tmp_path / "dest")
    assert int((tmp_path / "dest" / "f").stat().st_mtime) == mtime


def test_arcman_reads_7z_zip_mtimes(tmp_path: Path) -> None:
    if tool("7z") is None:
        pytest.skip("7z is not installed")
    source = tmp_path / "src"
    source.mkdir()
    for name, mtime in [("old", -152_391_233), ("odd", 1_796_575_421), ("far", 10_413_792_000)]:
        (source / name).write_text(name)
        os.utime(source / name, (mtime, mtime))
    _run("7z", "a", "-tzip", tmp_path / "a.zip", ".", cwd=source)
    _arcman_extract(tmp_path / "a.zip", tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == snapshot(source)


def test_zipfile_reads_arcman_zips(tmp_path: Path, tree: Path) -> None:
    archive = _create(tree, tmp_path / "a.zip")
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        z.extractall(tmp_path / "dest")
        names = set(z.namelist())
    dest = tmp_path / "dest"
    # zipfile ignores unix modes and stores symlinks as files holding the target.
    assert (dest / "sub" / "big.bin").read_bytes() == (tree / "sub" / "big.bin").read_bytes()
    assert (dest / LONG).read_text() == "long\n"
    assert (dest / "ünïcødé ✓.txt").read_text() == "unicode\n"
    assert (dest / "link").read_text() == "a.txt"
    assert {"empty/", "sub/deep/zero", MANIFEST} <= names


def _arcman_extract(archive: Path, dest: Path) -> None:
    with ArchiveManager() as manager:
        assert manager.verify_archive(archive).verification == "container"
        result = manager.extract_archive(archive, dest)
    assert result.verification == "container"


FOREIGN_TAR = {
    "tar czf": ("tar", ["-czf"], ".tar.gz"),
    "tar cjf": ("tar", ["-cjf"], ".tar.bz2"),
    "tar cJf": ("tar", ["-cJf"], ".tar.xz"),
    "tar --zstd": ("tar", ["--zstd", "-cf"], ".tar.zst"),
    "tar cf": ("tar", ["-cf"], ".tar"),
    "bsdtar czf": ("bsdtar", ["-czf"], ".tar.gz"),
    "bsdtar zip": ("bsdtar", ["--format", "zip", "-cf"], ".zip"),
}


@pytest.mark.parametrize("case", sorted(FOREIGN_TAR))
def test_arcman_extracts_tool_archives(tmp_path: Path, tree: Path, case: str) -> None:
    program, flags, ext = FOREIGN_TAR[case]
    if tool(program) is None:
        pytest.skip(f"{program} is not installed")
    if "--zstd" in flags and tool("zstd") is None:
        pytest.skip("GNU tar needs the zstd program for --zstd")
    if ext == ".tar.zst" and not installed("pyzstd"):
        pytest.skip("arcman needs pyzstd for .tar.zst, not installed here")
    archive = tmp_path / f"foreign{ext}"
    _run(program, *flags, archive, ".", cwd=tree)
    _arcman_extract(archive, tmp_path / "dest")
    assert snapshot(tmp_path / "dest", mtimes=False) == _expected(tree)


def _need_gnu_tar() -> None:
    if tool("tar") is None or b"GNU tar" not in subprocess.run(
        ["tar", "--version"], capture_output=True
    ).stdout:
        pytest.skip("GNU tar is not installed")


@pytest.mark.parametrize("fmt", ["gnu", "oldgnu"])
def test_arcman_extracts_gnu_incremental_archives(tmp_path: Path, tree: Path, fmt: str) -> None:
    """GNU tar -G keeps atime and ctime where ustar keeps a name prefix: not a directory."""
    _need_gnu_tar()
    archive = tmp_path / "incremental.tar"
    _run("tar", f"--format={fmt}", "-G", "-cf", archive, "a.txt", "sub/deep/zero", cwd=tree)
    dest = tmp_path / "dest"
    _arcman_extract(archive, dest)
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        "a.txt", "sub", "sub/deep", "sub/deep/zero"
    ]


def test_arcman_extracts_zip_of_a_pipe(tmp_path: Path) -> None:
    """``cmd | zip`` (Info-ZIP reading stdin) marks the member a FIFO; unzip extracts a file."""
    if tool("zip") is None:
        pytest.skip("zip is not installed")
    archive = tmp_path / "piped.zip"
    with archive.open("wb") as out:  # input= feeds zip's stdin through a pipe
        subprocess.run(["zip", "-q", "-", "-"], input=b"dump\n" * 1000, stdout=out, check=True)
    _arcman_extract(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "-").read_bytes() == b"dump\n" * 1000


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_arcman_extracts_gnu_tar_with_a_volume_label(tmp_path: Path, tree: Path, fmt: str) -> None:
    """tar -V writes a volume label header first: not a member, and no reason to refuse."""
    _need_gnu_tar()
    archive = tmp_path / "labelled.tar"
    _run("tar", f"--format={fmt}", "-V", "release 1.0", "-cf", archive, "a.txt", cwd=tree)
    dest = tmp_path / "dest"
    _arcman_extract(archive, dest)
    assert sorted(os.listdir(dest)) == ["a.txt"]


def test_arcman_extracts_zip_r(tmp_path: Path, tree: Path) -> None:
    if tool("zip") is None:
        pytest.skip("zip is not installed")
    archive = tmp_path / "foreign.zip"
    _run("zip", "-q", "-r", "-y", archive, ".", cwd=tree)  # -y: store symlinks as links
    _arcman_extract(archive, tmp_path / "dest")
    assert snapshot(tmp_path / "dest", mtimes=False) == _expected(tree)


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_arcman_extracts_tarfile_archives(tmp_path: Path, tree: Path, mode: str) -> None:
    archive = tmp_path / "foreign.tar"
    with tarfile.open(archive, mode) as t:
        for entry in sorted(os.listdir(tree)):
            t.add(tree / entry, arcname=entry)
    _arcman_extract(archive, tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == snapshot(tree)


@pytest.mark.parametrize("text", ["1700000000.123456789", "-1.5", "1700000000.000000001"])
def test_a_pax_mtime_with_a_fraction_is_set_to_the_nanosecond(tmp_path: Path, text: str) -> None:
    """As GNU tar sets it (tarfile's float would be ~0.2 us off), on every kind of member and
    on both ways files are written: 40 tiny ones (the helper process writes most) and a large
    one (streamed)."""
    seconds, _, fraction = text.partition(".")
    sign = -1 if text.startswith("-") else 1
    expected = int(seconds) * 10**9 + sign * int(fraction.ljust(9, "0"))
    members = [tar_dir("d"), tar_link("d/link", "f0"), tar_file("big", b"x" * (4 << 20))]
    members += [tar_file(f"d/f{n}", b"%d" % n) for n in range(40)]
    for info, _ in members:
        info.mtime = int(seconds) - (1 if text.startswith("-") else 0)
        info.pax_headers = {"mtime": text}
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    with ArchiveManager() as manager:
        manager.extract_archive(archive, tmp_path / "out")
    for info, _ in members:
        assert (tmp_path / "out" / info.name).lstat().st_mtime_ns == expected, info.name


def test_arcman_extracts_zipfile_archives(tmp_path: Path, tree: Path) -> None:
    shutil.rmtree(tree / "empty")
    (tree / "link").unlink()  # zipfile writes neither empty dirs nor links by itself
    archive = tmp_path / "foreign.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(tree).as_posix())
    _arcman_extract(archive, tmp_path / "dest")
    expected = {k: v[:2] for k, v in _expected(tree).items() if v[0] == "file"}
    got = {k: v[:2] for k, v in snapshot(tmp_path / "dest", mtimes=False).items() if v[0] == "file"}
    assert got == expected
    assert (tmp_path / "dest" / "run.sh").stat().st_mode & 0o111  # zipfile keeps unix modes


def test_foreign_archive_integrity_is_still_checked(tmp_path: Path, tree: Path) -> None:
    archive = tmp_path / "foreign.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tree / "sub", arcname="sub")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with ArchiveManager() as manager, pytest.raises(IntegrityError):
        manager.verify_archive(archive)


@pytest.mark.parametrize("ext", FORMATS)
def test_sha256_sidecar_passes_sha256sum(tmp_path: Path, tree: Path, ext: str) -> None:
    if tool("sha256sum") is None:
        pytest.skip("sha256sum is not installed")
    archive = _create(tree, tmp_path / f"a{ext}")
    _run("sha256sum", "-c", f"{archive.name}.sha256", cwd=tmp_path)


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time 5 hours behind UTC (a POSIX TZ string: no zone database needed)."""
    import time

    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_zip_dos_times_are_local_time_as_their_writers_mean(
    tmp_path: Path, new_york: None
) -> None:
    """Info-ZIP, zipfile and bsdtar write the DOS time in local time and unzip reads it so;
    only arcman's own zips (marked) hold it in UTC. The extended-timestamp field is signed,
    as Info-ZIP writes it, below 2038."""
    import struct
    import time

    archive = tmp_path / "foreign.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(zipfile.ZipInfo("dos", (2020, 6, 1, 12, 0, 0)), b"x")
        old = zipfile.ZipInfo("old", (1980, 1, 1, 0, 0, 0))
        old.extra = struct.pack("<HHBi", 0x5455, 5, 1, -302_400_000)  # 1960-06-01
        z.writestr(old, b"y")
    with ArchiveManager() as manager:
        mtimes = {e.name: e.mtime for e in manager.list_archive(archive)}
    assert mtimes == {"dos": int(time.mktime((2020, 6, 1, 12, 0, 0, 0, 0, -1))),
                      "old": -302_400_000}
    assert mtimes["dos"] == calendar.timegm((2020, 6, 1, 17, 0, 0))


@pytest.mark.needs_zstd
def test_zstd_archive_that_starts_with_a_skippable_frame(tmp_path: Path, tree: Path) -> None:
    """As pzstd and seekable zstd write them: a skippable frame, then the data's frames."""
    import pyzstd

    plain = tmp_path / "t.tar"
    with tarfile.open(plain, "w") as t:
        t.add(tree, arcname=".")
    archive = tmp_path / "foreign.tar.zst"
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"abcd"
    archive.write_bytes(skippable + pyzstd.compress(plain.read_bytes()))
    _arcman_extract(archive, tmp_path / "dest")
    assert snapshot(tmp_path / "dest") == snapshot(tree)
