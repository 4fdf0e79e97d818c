"""GNU sparse members (tar --sparse): extracted whole, holes left as holes, maps checked."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, CorruptArchiveError
from arcman._extract.sparse import HOLE, SparseData, is_hole
from helpers import tool

MiB = 1024 * 1024
# The four ways GNU tar writes a sparse file: old GNU headers, and pax maps of three versions.
GNU_SPARSE_FORMATS = {
    "gnu": ["--format=gnu"],
    **{f"pax-{v}": ["--format=posix", f"--sparse-version={v}"] for v in ("0.0", "0.1", "1.0")},
}


def _need_gnu_tar() -> None:
    if tool("tar") is None or b"GNU tar" not in subprocess.run(
        ["tar", "--version"], capture_output=True, check=False
    ).stdout:
        pytest.skip("GNU tar is not installed")


def _sparse_file(path: Path, size: int, chunks: list[tuple[int, bytes]]) -> bytes:
    """Write a file of ``size`` bytes with ``chunks`` of data and holes elsewhere; return
    its content."""
    content = bytearray(size)
    with path.open("wb") as f:
        for offset, data in chunks:
            f.seek(offset)
            f.write(data)
            content[offset : offset + len(data)] = data
        f.truncate(size)
    return bytes(content)


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.fixture
def sparse_tree(tmp_path: Path) -> dict[str, bytes]:
    """Holes first, between and last; a small sparse file; one that is all hole."""
    src = tmp_path / "src"
    src.mkdir()
    return {
        "disk.img": _sparse_file(
            src / "disk.img", 9 * MiB, [(MiB, b"boot" * 3000), (5 * MiB + 7, b"data" * 5000)]
        ),
        "small.db": _sparse_file(src / "small.db", 300_000, [(100_000, b"row" * 100)]),
        "empty.img": _sparse_file(src / "empty.img", 3 * MiB, []),
        "plain.txt": _sparse_file(src / "plain.txt", 6, [(0, b"plain\n")]),
    }


@pytest.mark.parametrize("fmt", GNU_SPARSE_FORMATS.values(), ids=GNU_SPARSE_FORMATS.keys())
@pytest.mark.parametrize("compress", ["", "z"], ids=["tar", "tar.gz"])
def test_gnu_tar_sparse_archives_extract_whole_with_their_holes(
    tmp_path: Path, sparse_tree: dict[str, bytes], fmt: list[str], compress: str
) -> None:
    _need_gnu_tar()
    archive = tmp_path / ("sparse.tar.gz" if compress else "sparse.tar")
    subprocess.run(
        ["tar", "--sparse", *fmt, f"-c{compress}f", str(archive), *sorted(sparse_tree)],
        cwd=tmp_path / "src", check=True, capture_output=True,
    )
    dest = tmp_path / "dest"
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        listed = {e.name: e.sha256 for e in manager.list_archive(archive)}
        assert manager.verify_archive(archive).verification == "container"
        manager.extract_archive(archive, dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(sparse_tree)
    for name, content in sparse_tree.items():
        assert (dest / name).read_bytes() == content, name
        assert listed[name] == hashlib.sha256(content).hexdigest()
    source = tmp_path / "src" / "disk.img"
    if _allocated(source) < MiB:  # the file system keeps holes: so must extraction
        assert _allocated(dest / "disk.img") < MiB
        assert _allocated(dest / "empty.img") < MiB


def _pax_sparse(*members: tuple[str, int, list[tuple[int, int]], bytes]) -> bytes:
    """A tar of pax 0.1 sparse members (as GNU tar --sparse-version=0.1 writes them): each
    ``(name, real size, map, stored data)``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size, chunks, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {
                "GNU.sparse.size": str(size),
                "GNU.sparse.numblocks": str(len(chunks)),
                "GNU.sparse.map": ",".join(f"{o},{n}" for o, n in chunks) or "0,0",
            }
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@st.composite
def _sparse_files(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], bytes, bytes]:
    """A file size (up to 3 MiB: small and large members), a map of chunks in order and
    apart, the stored data, and the whole content."""
    size = draw(st.integers(0, 3 * MiB))
    cuts = sorted(draw(st.lists(st.integers(0, size), max_size=8)))
    chunks = [(a, b - a) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if b > a]
    content = bytearray(size)
    stored = b""
    for offset, length in chunks:
        piece = draw(st.binary(min_size=1, max_size=1)) * length
        content[offset : offset + length] = piece
        stored += piece
    return size, chunks, stored, bytes(content)


@settings(max_examples=40, deadline=None)
@given(sparse=_sparse_files())
def test_sparse_members_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    sparse: tuple[int, list[tuple[int, int]], bytes, bytes],
) -> None:
    size, chunks, stored, content = sparse
    box = tmp_path_factory.mktemp("sparse")
    (box / "a.tar").write_bytes(_pax_sparse(("f.img", size, chunks, stored)))
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        manager.extract_archive(box / "a.tar", box / "dest")
    assert (box / "dest" / "f.img").read_bytes() == content


@pytest.mark.parametrize(
    ("size", "chunks", "stored", "why"),
    [
        (100, [(0, 10), (5, 10)], 20, "overlapping chunks"),
        (100, [(50, 10), (0, 10)], 20, "chunks out of order"),
        (100, [(95, 10)], 10, "a chunk past the end of the file"),
        (100, [(0, -10), (20, 30)], 20, "a negative length"),
        (100, [(0, 10)], 600, "more data stored than the map places"),
        (2000, [(0, 600), (800, 20)], 70, "less data stored than the map places"),
    ],
)
def test_damaged_sparse_maps_are_refused(
    tmp_path: Path, size: int, chunks: list[tuple[int, int]], stored: int, why: str
) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(_pax_sparse(("f.img", size, chunks, b"x" * stored)))
    with pytest.raises(CorruptArchiveError, match="damaged sparse map"):
        ArchiveManager().extract_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists(), why


def test_reads_stop_at_each_hole_and_holes_are_views_of_zeros() -> None:
    stream = io.BytesIO(b"abcdefgh" + bytes(504))
    data = SparseData("f", stream.read, [(0, 0), (4, 3), (10, 5), (20, 0)], 20, 512)
    pieces = []
    while piece := data.read(4):
        pieces.append(piece)
    assert [bytes(p) for p in pieces] == [
        bytes(4), b"abc", bytes(3), b"defg", b"h", bytes(4), bytes(1)
    ]
    assert [is_hole(p) for p in pieces] == [True, False, True, False, False, True, True]
    assert not is_hole(bytes(4)) and not is_hole(memoryview(bytes(4)))
    assert HOLE.readonly
    huge = SparseData("f", stream.read, [], 5 * MiB, 0)
    assert len(huge.read(4 * MiB)) == len(HOLE)  # holes come a buffer at a time


def test_many_sparse_members_through_batches_and_a_large_one(tmp_path: Path) -> None:
    """Small sparse members go in batches (to the pool or the helper process), a large one
    through the staging tree's own writes; all of them whole."""
    members = [(f"s{i:03}.db", 5000, [(1000, 10), (3000, 20)]) for i in range(200)]
    members.append(("big.img", 4 * MiB, [(2 * MiB, 100)]))
    archive = tmp_path / "many.tar"
    archive.write_bytes(_pax_sparse(*(
        (name, size, chunks, b"y" * sum(n for _, n in chunks)) for name, size, chunks in members
    )))
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        manager.extract_archive(archive, tmp_path / "dest")
    for name, size, chunks in members:
        content = bytearray(size)
        for offset, length in chunks:
            content[offset : offset + length] = b"y" * length
        assert (tmp_path / "dest" / name).read_bytes() == content, name
