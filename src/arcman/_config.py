"""ArchiveConfig: every knob of an operation, validated when it is built."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ._errors import ConfigError
from ._formats import CompressionFormat

ProgressCallback = Callable[[int, int], None]
OnError = Literal["fail", "skip"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def available_cpus() -> int:
    """The CPUs this process may run on: a container's or ``taskset``'s affinity mask can
    allow fewer than the machine has, and threads beyond them only contend."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS or Windows
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_thread_count() -> int:
    return min(4, available_cpus())


def _check_int(
    owner: str, name: str, value: object, minimum: int | None, maximum: int | None = None
) -> None:
    """Refuse a non-int (bool and float included) or one outside ``minimum``..``maximum`` with
    ConfigError, not the TypeError a later comparison would raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{owner}.{name} must be an int, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{owner}.{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{owner}.{name} must be at most {maximum}, not {value}")


# 9999-12-31T23:59:59Z: the last second an ISO 8601 date (the metadata's created_at) can
# name; time.gmtime overflows not far above it.
MAX_EPOCH = 253402300799


@dataclass(frozen=True)
class ExtractionLimits:
    """Ceilings that stop archive bombs; the defaults suit a small board such as a Raspberry Pi.

    The member count bounds the memory that is not flat: a regular file costs a few bytes, a
    directory or link ~0.4 KiB and a zip entry ~0.6 KiB (zipfile's central directory), so
    200,000 members peak under ~150 MiB above the interpreter; 4 GiB fits an SD card beside
    the tree it replaces. Raise them (or set one to None for no limit) for archives you trust
    to be large. See SECURITY.md.
    """

    max_total_size: int | None = 4 * GiB
    max_members: int | None = 200_000
    max_member_size: int | None = 2 * GiB
    # Uncompressed bytes per compressed byte, checked once 64 MiB have been produced:
    # text rarely exceeds 20:1, a zero-filled bomb reaches 1,000:1 (gzip) or far more (zstd).
    max_compression_ratio: float | None = 250.0

    def __post_init__(self) -> None:
        """Refuse anything but a positive finite number or None: every comparison with NaN is
        false, so a NaN limit would switch its check off without a word."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name != "max_compression_ratio":
                _check_int("ExtractionLimits", f.name, value, 1)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"ExtractionLimits.{f.name} must be a number, not {value!r}")
            elif not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"ExtractionLimits.{f.name} must be positive and finite or None, not {value}"
                )


@dataclass
class ArchiveConfig:
    """Settings for create, extract and verify. Invalid values raise ConfigError (a ValueError)
    on construction.

    ``thread_pool_size`` is capped at the CPUs this process may run on;
    ``enable_parallelization=False`` runs every stage on the calling thread (for debugging) and
    produces the same archive bytes.
    ``memory_budget`` bounds what an operation holds beyond the interpreter: half goes to
    member data read ahead or being written, a quarter to codec blocks in flight (or
    decompressed data read ahead), an eighth to archive bytes queued for the output thread, the
    rest to per-member records, which are compact (a few bytes a name) or spooled to disk.
    ``on_error="skip"`` turns unreadable source files into reported skips instead of errors.
    ``hard_links=False`` archives each name of a file with several (hard links) as a copy of
    its own, as ``tar --hard-dereference`` does; by default a tar stores the content once and
    the other names as links to the first, which extraction makes links again. A zip, which
    has no links, always stores copies.
    """

    compression_level: int | None = None
    preserve_permissions: bool = True
    preserve_timestamps: bool = True
    follow_symlinks: bool = False
    create_checksums: bool = True
    include_metadata: bool = True
    progress_callback: ProgressCallback | None = None
    progress_item_callback: Callable[[str], None] | None = None
    exclude_patterns: list[str] = field(default_factory=lambda: [".DS_Store", "Thumbs.db"])
    max_file_size: int | None = None
    thread_pool_size: int = field(default_factory=default_thread_count)
    enable_parallelization: bool = True
    memory_budget: int = 64 * MiB
    on_error: OnError = "fail"
    format: CompressionFormat | None = None
    reproducible: bool = False
    source_date_epoch: int | None = None
    limits: ExtractionLimits = field(default_factory=ExtractionLimits)
    hard_links: bool = True

    def __post_init__(self) -> None:
        for name in _BOOL_FIELDS:
            # Not truthiness: "false" or "no" (from a file or the environment) would be true.
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"ArchiveConfig.{name} must be a bool, not {value!r}")
        if self.compression_level is not None:
            _check_int("ArchiveConfig", "compression_level", self.compression_level, None)
        if self.format is not None and not isinstance(self.format, CompressionFormat):
            raise ConfigError(f"format must be a CompressionFormat, not {self.format!r}")
        if self.compression_level is not None and self.format is not None:
            self.level_for(self.format)
        _check_int("ArchiveConfig", "thread_pool_size", self.thread_pool_size, 1)
        self.thread_pool_size = min(self.thread_pool_size, available_cpus())
        if self.max_file_size is not None:
            _check_int("ArchiveConfig", "max_file_size", self.max_file_size, 0)
        _check_int("ArchiveConfig", "memory_budget", self.memory_budget, 1 * MiB)
        if self.on_error not in ("fail", "skip"):
            raise ConfigError(f"on_error must be 'fail' or 'skip', not {self.on_error!r}")
        if self.progress_callback is not None and not callable(self.progress_callback):
            raise ConfigError("progress_callback must be callable(done_bytes, total_bytes)")
        if self.progress_item_callback is not None and not callable(self.progress_item_callback):
            raise ConfigError("progress_item_callback must be callable(member_name)")
        if not isinstance(self.exclude_patterns, list | tuple) or not all(
            isinstance(p, str) for p in self.exclude_patterns
        ):
            raise ConfigError("exclude_patterns must be a list of strings")
        if self.source_date_epoch is not None:
            _check_int("ArchiveConfig", "source_date_epoch", self.source_date_epoch, 0, MAX_EPOCH)
        if not isinstance(self.limits, ExtractionLimits):
            raise ConfigError("limits must be an ExtractionLimits")

    @property
    def threads(self) -> int:
        """Worker threads an operation actually uses (1 when parallelization is off)."""
        return self.thread_pool_size if self.enable_parallelization else 1

    def level_for(self, fmt: CompressionFormat) -> int:
        """The compression level to use for ``fmt``, validated against the format's range."""
        if self.compression_level is None:
            return fmt.default_level
        low, high = fmt.level_range
        if not low <= self.compression_level <= high:
            raise ConfigError(
                f"compression_level {self.compression_level} is out of range for {fmt.value} "
                f"({low}-{high})"
            )
        return self.compression_level

    def replace(self, **changes: object) -> ArchiveConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_BOOL_FIELDS = tuple(f.name for f in dataclasses.fields(ArchiveConfig) if f.type == "bool")
