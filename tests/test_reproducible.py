"""--reproducible: the same tree gives the same bytes in every format, wherever it lies, whatever
its mtimes and permission noise, and with any thread count."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveManager
from arcman._cli import main
from arcman._config import MAX_EPOCH

FORMATS = ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip"]


def _noisy_copy(source: Path, dest: Path) -> None:
    """Copy with other mtimes and group/other bits: what a checkout on another machine gives."""
    shutil.copytree(source, dest, symlinks=True)
    for n, path in enumerate(sorted(dest.rglob("*"))):
        if path.is_symlink():
            continue
        os.utime(path, (1_000_000 + n * 7919, 2_000_000_000 - n * 104729))
        path.chmod((path.stat().st_mode | 0o060) & ~0o005)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_tree_same_bytes(tmp_path: Path, sample_tree: Path, fmt: str) -> None:
    (sample_tree / "sub" / "big2.bin").write_bytes(os.urandom(64 * 1024) * 40)  # > 1 block
    other = tmp_path / "elsewhere" / "checkout"
    _noisy_copy(sample_tree, other)
    one = ArchiveConfig(reproducible=True, enable_parallelization=False)
    many = ArchiveConfig(reproducible=True, thread_pool_size=4, memory_budget=1024 * 1024)
    a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    with ArchiveManager(one) as manager:
        manager.create_archive(sample_tree, a)
    with ArchiveManager(many) as manager:
        manager.create_archive(other, b)
    assert _digest(a) == _digest(b)


def test_source_date_epoch_sets_every_mtime(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(archive), "--reproducible", "-q"]) == 0
    with ArchiveManager() as manager:
        entries = manager.list_archive(archive)
    assert {e.mtime for e in entries} == {1700000000}
    assert {e.mode for e in entries if e.type == "file"} <= {0o644, 0o755}


def test_source_date_epoch_that_is_not_a_number_is_a_usage_error(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "abc")
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(archive), "--reproducible", "-q"]) == 2
    assert "SOURCE_DATE_EPOCH must be an integer" in capsys.readouterr().err
    assert not archive.exists()


def test_source_date_epoch_past_year_9999_is_a_usage_error(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was a traceback: OSError (EOVERFLOW) from time.gmtime, exit 70."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(2**62))
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(archive), "--reproducible", "-q"]) == 2
    err = capsys.readouterr().err
    assert "SOURCE_DATE_EPOCH must be at most" in err and len(err.strip().splitlines()) == 1
    assert not archive.exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_latest_allowed_date_round_trips(tmp_path: Path, sample_tree: Path, fmt: str) -> None:
    archive = tmp_path / f"a.{fmt}"
    with ArchiveManager(ArchiveConfig(source_date_epoch=MAX_EPOCH)) as manager:
        manager.create_archive(sample_tree, archive)
        assert manager.verify_archive_integrity(archive)
        manager.extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == sorted(
        p.name for p in sample_tree.rglob("*")
    )


def test_without_reproducible_mtimes_change_the_bytes(tmp_path: Path, sample_tree: Path) -> None:
    """Guards the test above: mtime noise must matter when --reproducible is off."""
    other = tmp_path / "other"
    _noisy_copy(sample_tree, other)
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar")
        manager.create_archive(other, tmp_path / "b.tar")
    assert _digest(tmp_path / "a.tar") != _digest(tmp_path / "b.tar")


def test_reproducible_tar_has_no_owner_names(tmp_path: Path, sample_tree: Path) -> None:
    """gid 0 is "root" on Linux but "wheel" on macOS: names would differ between machines."""
    import tarfile

    archive = tmp_path / "a.tar"
    with ArchiveManager(ArchiveConfig(reproducible=True)) as manager:
        manager.create_archive(sample_tree, archive)
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


def test_empty_source_date_epoch_counts_as_unset(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SOURCE_DATE_EPOCH= make dist` (a Makefile's empty variable) gives no date: 0, as
    Python's own py_compile takes it, not a usage error."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(archive), "--reproducible", "-q"]) == 0
    with ArchiveManager() as manager:
        assert {e.mtime for e in manager.list_archive(archive)} == {0}
