"""Damaged archives are caught by verify and by extract; failures leave outputs untouched."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from arcman import (
    ArchiveConfig,
    ArchiveManager,
    CorruptArchiveError,
    IntegrityError,
    SourceError,
)
from arcman._create import create as create_module
from helpers import FORMATS, listing, snapshot

PAYLOAD = bytes(range(256)) * 800  # 200 KiB that every compressor shrinks but not to nothing


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "payload.bin").write_bytes(PAYLOAD)
    (root / "a.txt").write_text("hello\n" * 100)
    (root / "big.bin").write_bytes(os.urandom(1024 * 1024 + 100))  # streamed, not read whole
    return root


def _make(tree: Path, archive: Path, *, sidecar: bool) -> Path:
    with ArchiveManager(ArchiveConfig(create_checksums=sidecar, include_metadata=False)) as m:
        m.create_archive(tree, archive)
    return archive


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _assert_caught(archive: Path, tmp_path: Path, error: type[Exception]) -> None:
    with ArchiveManager() as manager:
        with pytest.raises(error):
            manager.verify_archive_integrity(archive)
        # A new destination is never created...
        before = listing(tmp_path)
        with pytest.raises(error):
            manager.extract_archive(archive, tmp_path / "fresh")
        assert listing(tmp_path) == before
        # ...and an existing one is left exactly as it was, even when asked to replace it.
        dest = tmp_path / "dest"
        dest.mkdir(exist_ok=True)
        (dest / "keep").write_text("old")
        expected, before = snapshot(dest), listing(tmp_path)
        with pytest.raises(error):
            manager.extract_archive(archive, dest, replace=True)
        assert snapshot(dest) == expected
        assert listing(tmp_path) == before


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "no-sidecar"])
@pytest.mark.parametrize("ext", FORMATS)
def test_truncation_is_caught(tmp_path: Path, tree: Path, ext: str, sidecar: bool) -> None:
    archive = _make(tree, tmp_path / f"a{ext}", sidecar=sidecar)
    _truncate(archive)
    _assert_caught(archive, tmp_path, CorruptArchiveError if not sidecar else IntegrityError)


@pytest.mark.parametrize("ext", FORMATS)
def test_flipped_byte_in_the_middle_is_caught(tmp_path: Path, tree: Path, ext: str) -> None:
    archive = _make(tree, tmp_path / f"a{ext}", sidecar=False)
    _flip(archive, archive.stat().st_size // 3)
    _assert_caught(archive, tmp_path, IntegrityError)


def _data_offset(archive: Path, name: str) -> int:
    with tarfile.open(archive) as t:
        return t.getmember(name).offset_data


def test_flipped_byte_inside_a_tar_member_is_caught_by_the_manifest(
    tmp_path: Path, tree: Path
) -> None:
    archive = _make(tree, tmp_path / "a.tar", sidecar=False)
    _flip(archive, _data_offset(archive, "sub/payload.bin") + 1000)
    with ArchiveManager() as manager, pytest.raises(IntegrityError) as caught:
        manager.verify_archive(archive)
    assert not isinstance(caught.value, CorruptArchiveError)  # only the manifest can tell
    assert "sub/payload.bin" in str(caught.value)
    _assert_caught(archive, tmp_path, IntegrityError)


def test_flipped_byte_in_a_large_tar_member_is_caught(tmp_path: Path, tree: Path) -> None:
    archive = _make(tree, tmp_path / "a.tar", sidecar=False)
    _flip(archive, _data_offset(archive, "big.bin") + 1024 * 1024 + 50)
    with ArchiveManager() as manager, pytest.raises(IntegrityError, match=r"big\.bin"):
        manager.verify_archive(archive)


def test_tampered_sidecar_fails_verification(tmp_path: Path, tree: Path) -> None:
    archive = _make(tree, tmp_path / "a.tar.gz", sidecar=True)
    sidecar = Path(f"{archive}.sha256")
    sidecar.write_text("0" * 64 + "  a.tar.gz\n")
    _assert_caught(archive, tmp_path, IntegrityError)


def test_no_verify_skips_the_manifest_but_not_safety(tmp_path: Path, tree: Path) -> None:
    archive = _make(tree, tmp_path / "a.tar", sidecar=False)
    _flip(archive, _data_offset(archive, "a.txt"))
    with ArchiveManager() as manager:
        result = manager.extract_archive(archive, tmp_path / "out", verify_integrity=False)
    assert result.verification == "none"


def _collect_then(action: Callable[[Path], None], target: Path) -> type:
    """A Collector that lets ``action`` change the source after collection, as a racing
    process would, so that the read stage meets a file that is gone or has changed."""

    class Racing(create_module.Collector):  # type: ignore[misc, name-defined]
        def walk(self):  # type: ignore[no-untyped-def]
            entries = list(super().walk())
            action(target)
            yield from entries

    return Racing


RACES = {
    "small-vanishes": ("a.txt", lambda p: p.unlink()),  # tiny: read by the writer's thread
    "medium-vanishes": ("sub/payload.bin", lambda p: p.unlink()),  # read by a worker
    "large-vanishes": ("big.bin", lambda p: p.unlink()),
    "small-grows": ("a.txt", lambda p: p.write_text("much longer now\n" * 1000)),
    "large-shrinks": ("big.bin", lambda p: p.write_bytes(b"short")),
}


@pytest.mark.parametrize("ext", [".tar.gz", ".zip"])
@pytest.mark.parametrize("race", sorted(RACES))
def test_failed_create_leaves_the_existing_archive_untouched(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch, ext: str, race: str
) -> None:
    archive = tmp_path / f"a{ext}"
    archive.write_bytes(b"previous release")
    name, action = RACES[race]
    monkeypatch.setattr(create_module, "Collector", _collect_then(action, tree / name))
    before = listing(tmp_path)
    with ArchiveManager() as manager, pytest.raises(SourceError):
        manager.create_archive(tree, archive)
    assert archive.read_bytes() == b"previous release"
    assert listing(tmp_path) == before  # no temporary file and no sidecars


def test_skip_reports_a_vanished_file(
    tmp_path: Path, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        create_module, "Collector", _collect_then(lambda p: p.unlink(), tree / "a.txt")
    )
    with ArchiveManager(ArchiveConfig(on_error="skip")) as manager:
        meta = manager.create_archive(tree, tmp_path / "a.tar")
        manager.extract_archive(tmp_path / "a.tar", tmp_path / "out")
    assert len(meta.skipped) == 1 and meta.skipped[0].startswith("a.txt")
    assert "a.txt" not in meta.files
    assert listing(tmp_path / "out") == ["big.bin", "sub"]
