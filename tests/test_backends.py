"""Without ISA-L, zlib-ng or pyzstd (32-bit ARM installs none of them): the same formats
through the standard library, and a clear error for .tar.zst."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, UnsupportedFormatError
from arcman._backends import _combine_through_zeros, crc32_combiner
from arcman._create.compress import deflate_backend
from helpers import listing, snapshot

_FAST = ("isal", "zlib_ng", "pyzstd")
# What the command line does on a machine without them: each import fails.
_WITHOUT = (
    "import sys; sys.modules.update(dict.fromkeys({names!r}));"
    " from arcman.__main__ import run; sys.argv[0] = 'arcman'; sys.exit(run())"
)


@pytest.fixture
def without_fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if none of the fast libraries were installed (an import of each fails)."""
    for name in _FAST:
        monkeypatch.setitem(sys.modules, name, None)
    yield


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Several deflate blocks: text, random bytes (the flat-span probe), small files."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    words = b"alpha beta gamma return self value ( ) \n"
    (root / "text.py").write_bytes(b"".join(words[i % 7 :] for i in range(60_000)))
    (root / "random.bin").write_bytes(os.urandom(1_500_000))
    for i in range(40):
        (root / "sub" / f"f{i:02}.txt").write_bytes(b"line %d\n" % i * (i + 1))
    (root / "empty").write_bytes(b"")
    return root


def _create(src: Path, out: Path, *, parallel: bool = True) -> None:
    config = ArchiveConfig(enable_parallelization=parallel, thread_pool_size=2)
    ArchiveManager(config).create_archive(src, out)


@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_crc32_combined_through_zeros_is_the_crc_of_both(a: bytes, b: bytes) -> None:
    combined = _combine_through_zeros(zlib.crc32(a), zlib.crc32(b), len(b))
    assert combined == zlib.crc32(a + b) == crc32_combiner()(zlib.crc32(a), zlib.crc32(b), len(b))


@pytest.mark.needs_fast_libs
def test_each_level_falls_back_to_the_library_there_is(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [deflate_backend(level)[0].__name__ for level in (1, 6)] == [
        "isal.isal_zlib", "zlib_ng.zlib_ng"
    ]
    monkeypatch.setitem(sys.modules, "isal", None)
    assert deflate_backend(1)[0].__name__ == "zlib_ng.zlib_ng"
    assert deflate_backend(1)[1] == 1
    monkeypatch.setitem(sys.modules, "zlib_ng", None)
    assert deflate_backend(1) == (zlib, 1)
    assert deflate_backend(6) == (zlib, 6)  # gzip -6's own bytes
    assert deflate_backend(9) == (zlib, 9)
    assert crc32_combiner() is _combine_through_zeros


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gzip_without_fast_libraries_is_standard_and_thread_independent(
    tree: Path, tmp_path: Path, without_fast: None, level: int
) -> None:
    config = ArchiveConfig(compression_level=level, thread_pool_size=2)
    ArchiveManager(config).create_archive(tree, tmp_path / "p.tar.gz")
    sequential = ArchiveConfig(compression_level=level, enable_parallelization=False)
    ArchiveManager(sequential).create_archive(tree, tmp_path / "s.tar.gz")
    packed = (tmp_path / "p.tar.gz").read_bytes()
    assert packed == (tmp_path / "s.tar.gz").read_bytes()
    plain = gzip.decompress(packed)  # checks the combined CRC-32 and the length
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        assert tar.extractfile("text.py").read() == (tree / "text.py").read_bytes()  # type: ignore[union-attr]
    if level == 6:  # what gzip -6 makes of the same tar, give or take the sync flushes
        assert len(packed) <= 1.02 * len(gzip.compress(plain, 6))


def test_gzip_without_fast_libraries_round_trips_both_ways(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(tree, tmp_path / "fast.tar.gz")
    for name in _FAST:
        monkeypatch.setitem(sys.modules, name, None)
    _create(tree, tmp_path / "slow.tar.gz")
    manager = ArchiveManager(ArchiveConfig(thread_pool_size=2))
    manager.extract_archive(tmp_path / "fast.tar.gz", tmp_path / "a")
    assert manager.verify_archive_integrity(tmp_path / "slow.tar.gz")
    monkeypatch.undo()
    manager.extract_archive(tmp_path / "slow.tar.gz", tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tree) == snapshot(tmp_path / "b")


def test_damaged_gzip_is_refused_without_isal(
    tree: Path, tmp_path: Path, without_fast: None
) -> None:
    from arcman import ArchiveError

    _create(tree, tmp_path / "a.tar.gz")
    data = bytearray((tmp_path / "a.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.tar.gz").write_bytes(bytes(data))
    (tmp_path / "cut.tar.gz").write_bytes(bytes(data[: len(data) // 3]))
    for name in ("bad.tar.gz", "cut.tar.gz"):
        with pytest.raises(ArchiveError):
            ArchiveManager().extract_archive(tmp_path / name, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_zip_without_fast_libraries(tree: Path, tmp_path: Path, without_fast: None) -> None:
    _create(tree, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        assert archive.testzip() is None  # every member's CRC-32, the large ones' combined
        assert archive.read("random.bin") == (tree / "random.bin").read_bytes()
    ArchiveManager().extract_archive(tmp_path / "a.zip", tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(tree)


def test_zstd_without_pyzstd_is_a_clear_error(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A zstd frame (of no bytes): the refusal comes from the format, before any content.
    (tmp_path / "made.tar.zst").write_bytes(bytes.fromhex("28b52ffd2000010000"))
    monkeypatch.setitem(sys.modules, "pyzstd", None)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsupportedFormatError, match="needs the pyzstd package"):
        _create(tree, out / "a.tar.zst")
    assert listing(out) == []  # no temporary, no sidecar
    with pytest.raises(UnsupportedFormatError, match="needs the pyzstd package"):
        ArchiveManager().extract_archive(tmp_path / "made.tar.zst", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_command_line_without_pyzstd(tree: Path, tmp_path: Path) -> None:
    script = _WITHOUT.format(names=_FAST)
    made = subprocess.run(
        [sys.executable, "-c", script, "create", str(tree), "-o", str(tmp_path / "a.tar.zst")],
        capture_output=True, text=True, check=False,
    )
    assert made.returncode == 2
    assert made.stderr.splitlines() == [
        "arcman: error: tar.zst needs the pyzstd package, which is not installed here"
        " (pip install pyzstd, or arcman[fast])"
    ]
    assert listing(tmp_path) == ["src"]
    made = subprocess.run(
        [sys.executable, "-c", script, "create", str(tree), "-o", str(tmp_path / "a.tar.gz"),
         "-q"], capture_output=True, text=True, check=False,
    )
    assert (made.returncode, made.stderr) == (0, "")
    checked = subprocess.run(
        [sys.executable, "-c", script, "verify", str(tmp_path / "a.tar.gz")],
        capture_output=True, text=True, check=False,
    )
    assert checked.returncode == 0, checked.stderr
