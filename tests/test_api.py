"""The public API's contracts: config validation, formats, metadata, sidecars and stats."""

from __future__ import annotations

import gc
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from arcman import (
    ArchiveConfig,
    ArchiveError,
    ArchiveManager,
    ArchiveMetadata,
    CompressionFormat,
    ConfigError,
    DestinationError,
    ExtractionLimits,
    IntegrityError,
    SourceError,
    UnsupportedFormatError,
)
from helpers import FORMATS, snapshot


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compression_level": "6"},
        {"compression_level": True},
        {"compression_level": 10, "format": CompressionFormat.TAR_GZ},
        {"compression_level": 23, "format": CompressionFormat.TAR_ZST},
        {"thread_pool_size": 0},
        {"thread_pool_size": 2.0},
        {"thread_pool_size": True},
        {"max_file_size": -1},
        {"memory_budget": 1000},
        {"on_error": "ignore"},
        {"progress_callback": 42},
        {"exclude_patterns": "*.pyc"},
        {"exclude_patterns": [1]},
        {"format": "zip"},
        {"source_date_epoch": -1},
        # Past year 9999: time.gmtime raised OverflowError while the metadata was written.
        {"source_date_epoch": 10**20},
        {"limits": {"max_members": 1}},
        # Wrong types raised TypeError from a comparison, not an ArchiveError.
        {"memory_budget": "64M"},
        {"max_file_size": "1"},
        {"source_date_epoch": "0"},
        {"exclude_patterns": 42},
        {"compression_level": 6, "format": "zip"},
        # Taken for their truthiness: "false" was true, so checksums were written.
        {"create_checksums": "false"},
        {"enable_parallelization": "no"},
        {"follow_symlinks": 1},
        {"preserve_permissions": None},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        ArchiveConfig(**kwargs)
    assert isinstance(caught.value, ArchiveError) and isinstance(caught.value, ValueError)


def test_config_defaults() -> None:
    config = ArchiveConfig()
    assert config.exclude_patterns == [".DS_Store", "Thumbs.db"]
    assert config.follow_symlinks is False
    assert config.create_checksums and config.include_metadata and config.enable_parallelization
    assert config.max_file_size is None
    assert 1 <= config.thread_pool_size <= min(4, len(os.sched_getaffinity(0)))
    assert ArchiveConfig(enable_parallelization=False).threads == 1


@pytest.mark.parametrize("field", ["max_total_size", "max_members", "max_compression_ratio"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ConfigError):
        ExtractionLimits(**{field: 0})


@pytest.mark.parametrize(
    "kwargs",
    [
        # Every comparison with NaN is false: a NaN ratio switched the bomb check off.
        {"max_compression_ratio": float("nan")},
        {"max_compression_ratio": float("inf")},
        {"max_compression_ratio": -float("inf")},
        {"max_compression_ratio": "250"},
        {"max_compression_ratio": True},
        {"max_members": 2.5},
        {"max_total_size": float("inf")},
        {"max_member_size": "1"},
    ],
)
def test_limits_must_be_finite_numbers_of_the_right_kind(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ExtractionLimits(**kwargs)


def test_ratio_limit_may_be_fractional() -> None:
    assert ExtractionLimits(max_compression_ratio=12.5).max_compression_ratio == 12.5


def test_level_out_of_range_for_the_output_format_is_a_config_error(
    tmp_path: Path, sample_tree: Path
) -> None:
    with ArchiveManager() as manager, pytest.raises(ConfigError, match="out of range"):
        manager.create_archive(
            sample_tree, tmp_path / "a.tar.gz", ArchiveConfig(compression_level=99)
        )
    assert os.listdir(tmp_path) == ["src"]


def test_thread_cap_is_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container or taskset may allow 1 CPU of a 64-core host: more threads only contend."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert ArchiveConfig().thread_pool_size == 1
    assert ArchiveConfig(thread_pool_size=8).thread_pool_size == 1
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    assert ArchiveConfig().thread_pool_size == 4
    assert ArchiveConfig(thread_pool_size=8).thread_pool_size == 8


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.tar", CompressionFormat.TAR),
        ("a.tar.gz", CompressionFormat.TAR_GZ),
        ("A.TGZ", CompressionFormat.TAR_GZ),
        ("x/y.tar.bz2", CompressionFormat.TAR_BZ2),
        ("a.tbz2", CompressionFormat.TAR_BZ2),
        ("a.tar.xz", CompressionFormat.TAR_XZ),
        ("a.txz", CompressionFormat.TAR_XZ),
        ("a.tar.zst", CompressionFormat.TAR_ZST),
        ("a.tzst", CompressionFormat.TAR_ZST),
        ("a.zip", CompressionFormat.ZIP),
        (Path("release.v1.2.tar.gz"), CompressionFormat.TAR_GZ),
    ],
)
def test_from_extension(name: str, fmt: CompressionFormat) -> None:
    assert CompressionFormat.from_extension(name) is fmt


@pytest.mark.parametrize("name", ["a.gz", "a.rar", "a", "a.tar.gz.bak", "tar", "a.7z"])
def test_from_extension_refuses_to_guess(name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match="known extensions") as caught:
        CompressionFormat.from_extension(name)
    assert isinstance(caught.value, ArchiveError) and isinstance(caught.value, ValueError)


def test_create_with_an_unknown_extension_writes_nothing(tmp_path: Path, sample_tree: Path) -> None:
    with ArchiveManager() as manager, pytest.raises(UnsupportedFormatError):
        manager.create_archive(sample_tree, tmp_path / "a.rar")
    assert os.listdir(tmp_path) == ["src"]


@pytest.mark.parametrize("ext", FORMATS)
def test_detect_ignores_a_lying_extension(tmp_path: Path, sample_tree: Path, ext: str) -> None:
    archive = tmp_path / f"a{ext}"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        renamed = archive.rename(tmp_path / "renamed.bin")
        assert CompressionFormat.detect(renamed).extensions[0] == ext
        manager.extract_archive(renamed, tmp_path / "out")
    assert snapshot(tmp_path / "out", skip=frozenset()) == snapshot(sample_tree)


def test_not_an_archive(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"hello world" * 100)
    with ArchiveManager() as manager, pytest.raises(UnsupportedFormatError):
        manager.verify_archive(junk)


@pytest.mark.parametrize("ext", FORMATS)
def test_metadata_round_trip_and_meta_sidecar(tmp_path: Path, sample_tree: Path, ext: str) -> None:
    archive = tmp_path / f"a{ext}"
    with ArchiveManager() as manager:
        meta = manager.create_archive(sample_tree, archive)
    data = json.loads(json.dumps(meta.to_dict()))
    assert ArchiveMetadata.from_dict(data) == meta
    assert data["format"] == CompressionFormat.from_extension(archive).value
    assert json.loads(Path(f"{archive}.meta").read_text()) == data
    assert meta.file_count == 4
    assert meta.compressed_size == archive.stat().st_size
    assert meta.uncompressed_size == sum(
        p.stat().st_size for p in sample_tree.rglob("*") if p.is_file() and not p.is_symlink()
    )
    assert sorted(meta.files) == sorted(
        p.relative_to(sample_tree).as_posix() for p in sample_tree.rglob("*")
    )
    assert {"collection", "hashing"} <= set(meta.timings)
    line = Path(f"{archive}.sha256").read_text()
    assert line == f"{meta.checksum_sha256}  {archive.name}\n"


def test_metadata_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown"):
        ArchiveMetadata.from_dict({"filename": "a", "bogus": 1})


def test_sidecars_can_be_turned_off(tmp_path: Path, sample_tree: Path) -> None:
    config = ArchiveConfig(create_checksums=False, include_metadata=False)
    with ArchiveManager(config) as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar")
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "src"]


def test_list_archive_reports_every_member(tmp_path: Path, sample_tree: Path) -> None:
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
        entries = {e.name: e for e in manager.list_archive(tmp_path / "a.tar.gz")}
    assert entries["link"].type == "symlink" and entries["link"].target == "a.txt"
    assert entries["run.sh"].mode == 0o755 and entries["run.sh"].type == "file"
    assert entries["a.txt"].size == 6 and entries["a.txt"].sha256 is not None
    assert entries["empty"].type == "dir" and entries["empty"].sha256 is None
    assert ".arcman-manifest.jsonl" not in entries


def test_list_archive_never_shows_an_unchecked_manifest(tmp_path: Path, sample_tree: Path) -> None:
    """A tampered archive (a member changed, one added, the manifest left as it was) is an
    IntegrityError, not a listing of what the manifest claims."""
    with ArchiveManager(ArchiveConfig(include_metadata=False, create_checksums=False)) as m:
        m.create_archive(sample_tree, tmp_path / "a.tar")
    with tarfile.open(tmp_path / "a.tar") as old, tarfile.open(tmp_path / "b.tar", "w") as new:
        for info in old.getmembers():
            data = old.extractfile(info).read() if info.isfile() else b""  # type: ignore[union-attr]
            if info.name == "a.txt":
                data = b"evil!\n"
            if info.name == ".arcman-manifest.jsonl":
                evil = tarfile.TarInfo("evil.sh")
                evil.size = 3
                new.addfile(evil, io.BytesIO(b"rm\n"))
            new.addfile(info, io.BytesIO(data))
    with ArchiveManager() as manager, pytest.raises(IntegrityError):
        manager.list_archive(tmp_path / "b.tar")


def test_config_format_is_for_outputs_whose_extension_names_none(
    tmp_path: Path, sample_tree: Path
) -> None:
    """A zip named .tar.gz is refused; a name without a known extension takes the format."""
    zip_config = ArchiveConfig(format=CompressionFormat.ZIP)
    with ArchiveManager() as manager:
        with pytest.raises(ConfigError, match="contradicts the extension"):
            manager.create_archive(sample_tree, tmp_path / "a.tar.gz", zip_config)
        assert not (tmp_path / "a.tar.gz").exists()
        manager.create_archive(sample_tree, tmp_path / "a.bin", zip_config)
        manager.create_archive(
            sample_tree, tmp_path / "b.tar.gz", ArchiveConfig(format=CompressionFormat.TAR_GZ)
        )
    assert CompressionFormat.detect(tmp_path / "a.bin") is CompressionFormat.ZIP
    assert CompressionFormat.detect(tmp_path / "b.tar.gz") is CompressionFormat.TAR_GZ


def test_excludes_and_max_file_size(tmp_path: Path, sample_tree: Path) -> None:
    (sample_tree / ".DS_Store").write_text("x")
    (sample_tree / "sub" / "x.pyc").write_text("x")
    with ArchiveManager() as manager:
        config = ArchiveConfig(exclude_patterns=[".DS_Store", "*.pyc"])
        meta = manager.create_archive(sample_tree, tmp_path / "a.tar", config)
        assert ".DS_Store" not in meta.files and "sub/x.pyc" not in meta.files
        with pytest.raises(SourceError, match="max_file_size"):
            manager.create_archive(
                sample_tree, tmp_path / "b.tar", ArchiveConfig(max_file_size=100)
            )
        skipping = ArchiveConfig(max_file_size=100, on_error="skip")
        meta = manager.create_archive(sample_tree, tmp_path / "c.tar", skipping)
    assert "sub/big.bin" not in meta.files
    assert [s.split(":")[0] for s in meta.skipped] == ["sub/big.bin"]
    assert not (tmp_path / "b.tar").exists()


def test_missing_source_and_bad_destination(tmp_path: Path, sample_tree: Path) -> None:
    with ArchiveManager() as manager:
        with pytest.raises(SourceError):
            manager.create_archive(tmp_path / "nope", tmp_path / "a.tar")
        with pytest.raises(DestinationError):
            manager.create_archive(sample_tree, tmp_path / "no" / "dir" / "a.tar")
        manager.create_archive(sample_tree, tmp_path / "a.tar")
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        with pytest.raises(DestinationError, match="not empty"):
            manager.extract_archive(tmp_path / "a.tar", tmp_path / "full")
        assert os.listdir(tmp_path / "full") == ["x"]
        manager.extract_archive(tmp_path / "a.tar", tmp_path / "full", replace=True)
    assert snapshot(tmp_path / "full") == snapshot(sample_tree)
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.meta", "a.tar.sha256", "full", "src"]


def test_progress_callback_reaches_the_total(tmp_path: Path, sample_tree: Path) -> None:
    calls: list[tuple[int, int]] = []
    config = ArchiveConfig(progress_callback=lambda done, total: calls.append((done, total)))
    with ArchiveManager(config) as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    # The whole tree's size from the first call on (creation walks the tree before reading
    # when someone watches; without a callback, reading starts while the walk goes on).
    assert {total for _, total in calls} == {calls[-1][1]}


@pytest.mark.parametrize("ext", ["tar", "zip"])
def test_progress_moves_within_a_large_file(tmp_path: Path, ext: str) -> None:
    """A bar must not sit at 0 for the whole of a big file: create reports each MiB read,
    extract (tar) each piece of the archive read (4 MiB)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(10 * 1024 * 1024))
    made: list[int] = []
    unpacked: list[int] = []
    with ArchiveManager() as manager:
        manager.create_archive(
            tmp_path / "src", tmp_path / f"a.{ext}",
            ArchiveConfig(progress_callback=lambda done, total: made.append(done)),
        )
        manager.extract_archive(
            tmp_path / f"a.{ext}", tmp_path / "out",
            ArchiveConfig(progress_callback=lambda done, total: unpacked.append(done)),
        )
    assert len(made) >= 10 and made == sorted(made)
    if ext == "tar":  # a zip member is read through zipfile: told when it is done
        assert len(unpacked) >= 3 and unpacked == sorted(unpacked)


def test_get_stats(tmp_path: Path, sample_tree: Path) -> None:
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        fresh = manager.get_stats()
        assert fresh["operations_total"] == 0 and fresh["pool_alive"] is False
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
        manager.create_archive(
            sample_tree, tmp_path / "b.zip", ArchiveConfig(enable_parallelization=False)
        )
        manager.verify_archive_integrity(tmp_path / "a.tar.gz")
        manager.extract_archive(tmp_path / "a.tar.gz", tmp_path / "out")
        manager.list_archive(tmp_path / "b.zip")
        with pytest.raises(SourceError):
            manager.create_archive(tmp_path / "missing", tmp_path / "c.tar")
        stats = manager.get_stats()
    assert stats["operations"] == {"create": 2, "verify": 1, "extract": 1, "list": 1}
    assert stats["operations_total"] == 5
    assert stats["failures"] == {"create": 1}
    assert stats["parallel_operations"] == 4 and stats["sequential_operations"] == 1
    assert stats["pool_size"] == min(2, len(os.sched_getaffinity(0)))
    assert stats["pool_alive"] is True
    assert stats["bytes_in"] > 0 and stats["bytes_out"] > 0 and stats["files"] > 0
    assert stats["throughput_bytes_per_s"] > 0
    for phase in ("collection", "hashing", "compression", "decompression", "verification",
                  "extraction", "commit"):
        summary = stats["phases"][phase]
        assert set(summary) == {"count", "total", "avg", "min", "max"}
        assert summary["count"] >= 1, phase
        assert summary["min"] <= summary["avg"] <= summary["max"] <= summary["total"] + 1e-9
    assert stats["phases"]["collection"]["count"] == 2
    assert manager.get_stats()["pool_alive"] is False


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs for 2 workers")
def test_pool_is_sized_by_the_operation_config(tmp_path: Path, sample_tree: Path) -> None:
    """A config passed to one call sizes the pool it runs on: the manager's pool of 1 worker
    took every parallel operation, whatever size the call asked for."""
    with ArchiveManager(ArchiveConfig(thread_pool_size=1)) as manager:
        manager.create_archive(
            sample_tree, tmp_path / "a.tar.gz", ArchiveConfig(thread_pool_size=2)
        )
        assert {size: pool._max_workers for size, pool in manager._pools.items()} == {2: 2}
        manager.verify_archive(tmp_path / "a.tar.gz")  # the manager's size: sequential
        assert set(manager._pools) == {2}
        assert manager.get_stats()["parallel_operations"] == 1


def test_item_callback_hears_every_member_in_archive_order(
    tmp_path: Path, sample_tree: Path
) -> None:
    created: list[str] = []
    extracted: list[str] = []
    with ArchiveManager() as manager:
        meta = manager.create_archive(
            sample_tree, tmp_path / "a.tar.gz", ArchiveConfig(progress_item_callback=created.append)
        )
        manager.extract_archive(
            tmp_path / "a.tar.gz", tmp_path / "out",
            ArchiveConfig(progress_item_callback=extracted.append),
        )
    assert created == meta.files
    assert extracted == meta.files


class _CallbackBug(OSError):
    pass


@pytest.mark.parametrize("error", [ValueError("my bug"), _CallbackBug(28, "my bug")])
def test_a_progress_callback_error_comes_out_as_it_was_raised(
    tmp_path: Path, error: Exception
) -> None:
    """Not as a corrupt archive or an unreadable source file: the pipelines take an OSError
    or a ValueError for theirs."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(3 * 1024 * 1024))  # read chunk by chunk
    with ArchiveManager() as manager:
        manager.create_archive(tmp_path / "src", tmp_path / "a.tar.gz")

        def callback(done: int, total: int) -> None:
            if done:
                raise error

        config = ArchiveConfig(progress_callback=callback)
        for operation in (
            lambda: manager.create_archive(tmp_path / "src", tmp_path / "b.tar.gz", config),
            lambda: manager.verify_archive(tmp_path / "a.tar.gz", config),
            lambda: manager.extract_archive(tmp_path / "a.tar.gz", tmp_path / "out", config),
        ):
            with pytest.raises(type(error)) as caught:
                operation()
            assert caught.value is error
        assert manager.get_stats()["failures"] == {"create": 1, "verify": 1, "extract": 1}
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "a.tar.gz.meta", "a.tar.gz.sha256", "src"]


@pytest.mark.parametrize("ext", [".tar.gz", ".zip"])
def test_an_item_callback_error_leaves_no_source_file_open(tmp_path: Path, ext: str) -> None:
    """A large file is opened when the reader hands it over, before the item callback hears
    its name: the callback raising there left its descriptor open for good."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(3 * 1024 * 1024))  # read chunk by chunk

    def on_item(name: str) -> None:
        raise ValueError("my bug")

    manager = ArchiveManager(ArchiveConfig(progress_item_callback=on_item))
    with manager, pytest.raises(ValueError, match="my bug"):
        manager.create_archive(tmp_path / "src", tmp_path / f"a{ext}")
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert str(tmp_path / "src" / "big") not in open_files


def test_a_progress_callback_error_frees_the_operation_at_once(tmp_path: Path) -> None:
    """Re-raised inside the handler of the CallbackFailed that carried it, the error got that
    wrapper as its __context__: a cycle that kept the operation's frames, and the zip they
    had open, alive until the garbage collector ran."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(os.urandom(3 * 1024 * 1024))
    archive = tmp_path / "a.zip"
    with ArchiveManager(ArchiveConfig(create_checksums=False)) as manager:
        manager.create_archive(tmp_path / "src", archive)  # no .sha256: no hashing job

        def callback(done: int, total: int) -> None:
            if done:
                raise ValueError("my bug")

        config = ArchiveConfig(progress_callback=callback)
        gc.disable()
        try:
            for operation in (manager.verify_archive, manager.list_archive):
                with pytest.raises(ValueError, match="my bug") as caught:
                    operation(archive, config)
                assert caught.value.__context__ is None
                del caught
                fds = os.listdir("/proc/self/fd")
                assert str(archive) not in {os.path.realpath(f"/proc/self/fd/{f}") for f in fds}
        finally:
            gc.enable()


@pytest.mark.parametrize(
    "change",
    [
        {"thread_pool_size": 0},
        {"memory_budget": 0},
        {"limits": None},
        {"exclude_patterns": None},
        {"format": "zip"},
        {"progress_callback": 5},
    ],
)
def test_a_config_changed_after_it_was_built_is_checked_again(
    tmp_path: Path, sample_tree: Path, change: dict[str, Any]
) -> None:
    """ArchiveConfig is a plain dataclass: a field set after construction skipped validation
    and failed deep inside an operation (ValueError from the pool, AttributeError, TypeError)."""
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
        for owner in ("call", "manager"):
            config = ArchiveConfig()
            with ArchiveManager(config if owner == "manager" else None) as other:
                for name, value in change.items():
                    setattr(config, name, value)
                passed = config if owner == "call" else None
                with pytest.raises(ConfigError):
                    other.create_archive(sample_tree, tmp_path / "b.tar.gz", passed)
                with pytest.raises(ConfigError):
                    other.extract_archive(tmp_path / "a.tar.gz", tmp_path / "out", passed)
    assert not (tmp_path / "b.tar.gz").exists() and not (tmp_path / "out").exists()


def test_a_thread_count_raised_after_construction_is_still_capped(
    tmp_path: Path, sample_tree: Path
) -> None:
    config = ArchiveConfig()
    config.thread_pool_size = 64
    with ArchiveManager(config) as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz")
        assert manager.get_stats()["pool_size"] <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("config", [{"thread_pool_size": 1}, "fast", 4])
def test_a_config_of_the_wrong_type_is_a_config_error(
    tmp_path: Path, sample_tree: Path, config: Any
) -> None:
    """Not an AttributeError from deep inside (and an empty dict was silently the default)."""
    with pytest.raises(ConfigError, match="must be an ArchiveConfig"):
        ArchiveManager(config)
    with pytest.raises(ConfigError, match="must be an ArchiveConfig"):
        ArchiveManager(config or {})
    with ArchiveManager() as manager, pytest.raises(ConfigError):
        manager.create_archive(sample_tree, tmp_path / "a.tar.gz", config)


def test_a_bytes_path_is_a_type_error_up_front(tmp_path: Path, sample_tree: Path) -> None:
    """The signatures take str or os.PathLike[str]. A bytes source made create report a
    SourceError for a member of a directory that exists; a bytes archive path a TypeError
    from a str operation midway (and a failure in the statistics)."""
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        calls: list[Callable[[], object]] = [
            lambda: manager.create_archive(bytes(sample_tree), tmp_path / "b.tar.gz"),
            lambda: manager.create_archive(sample_tree, bytes(tmp_path / "b.tar.gz")),
            lambda: manager.extract_archive(bytes(archive), tmp_path / "out"),
            lambda: manager.extract_archive(archive, bytes(tmp_path / "out")),
            lambda: manager.verify_archive(bytes(archive)),
            lambda: manager.verify_archive_integrity(bytes(archive)),
            lambda: manager.list_archive(bytes(archive)),
            lambda: manager.rollback(bytes(tmp_path / "out")),
        ]
        for call in calls:
            with pytest.raises(TypeError, match=r"str or os\.PathLike"):
                call()
        assert manager.get_stats()["failures"] == {}
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "a.tar.gz.meta", "a.tar.gz.sha256", "src"]


@pytest.mark.parametrize("flag", ["replace", "keep_previous", "verify_integrity"])
def test_extract_flags_must_be_bools(tmp_path: Path, sample_tree: Path, flag: str) -> None:
    """replace="false" was true: the destination's own files were swapped out and discarded."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep")
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, tmp_path / "a.tar")
        flags: dict[str, Any] = {"replace": True, flag: "false"}
        with pytest.raises(ConfigError, match=f"{flag} must be a bool"):
            manager.extract_archive(tmp_path / "a.tar", dest, **flags)
    assert os.listdir(dest) == ["precious.txt"]


def test_an_empty_path_is_a_config_error_not_the_working_directory(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.path.abspath("") is the working directory: extract(..., "", replace=True) replaced
    it, and create("", ...) archived it."""
    archive = tmp_path / "a.tar"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "precious.txt").write_text("keep me")
    monkeypatch.chdir(cwd)
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
        calls = [
            lambda: manager.extract_archive(archive, "", replace=True),
            lambda: manager.create_archive("", tmp_path / "b.tar"),
            lambda: manager.create_archive(sample_tree, ""),
            lambda: manager.verify_archive(""),
            lambda: manager.rollback(""),
        ]
        for call in calls:
            with pytest.raises(ConfigError, match="path is empty"):
                call()
    assert os.listdir(cwd) == ["precious.txt"]
    assert sorted(os.listdir(tmp_path)) == ["a.tar", "a.tar.meta", "a.tar.sha256", "cwd", "src"]
