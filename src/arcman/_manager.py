"""ArchiveManager: the public facade. It owns the worker pool and the statistics; the
pipelines in ``_create`` and ``_extract`` do the work."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, Any, TypeVar

from ._config import ArchiveConfig
from ._errors import ArchiveError, ConfigError
from ._manifest import FILE
from ._metadata import ArchiveEntry, ArchiveMetadata
from ._progress import CallbackFailed
from ._stats import PhaseClock, StatsRecorder
from ._workers import Submit

T = TypeVar("T")


class ArchiveManager:
    """Creates, extracts, verifies and lists archives.

    The create and extract pipelines are imported by the first operation that needs them, so
    a CLI run or a program that only creates does not load the other half.

    One manager may be shared by many threads: operations run concurrently on its pool of
    ``thread_pool_size`` workers (the operation's config's: one pool per size asked for,
    started on first use) and are not serialized. ``close()`` (or leaving the ``with`` block)
    shuts the pools down and joins their threads.
    """

    def __init__(self, config: ArchiveConfig | None = None) -> None:
        self.config = ArchiveConfig() if config is None else _checked(config)
        self._stats = StatsRecorder()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified as operations end
        self._running: dict[int, int] = {}  # operations running, by thread
        self._pools: dict[int, ThreadPoolExecutor] = {}  # by size
        self._closed = False

    def __enter__(self) -> ArchiveManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Refuse new operations, wait for those running on other threads to end, then shut
        the pool down and join its threads (shutting it under a running operation would
        strand the work it had queued)."""
        with self._lock:
            if threading.get_ident() in self._running:
                raise ArchiveError("close() called from inside one of this manager's operations")
            self._closed = True
            while self._running:
                self._idle.wait()
            pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def _begin(self) -> None:
        with self._lock:
            if self._closed:
                raise ArchiveError("this ArchiveManager is closed")
            me = threading.get_ident()
            self._running[me] = self._running.get(me, 0) + 1

    def _end(self) -> None:
        with self._lock:
            me = threading.get_ident()
            self._running[me] -= 1
            if not self._running[me]:
                del self._running[me]
            self._idle.notify_all()

    def _submit(self, config: ArchiveConfig) -> Submit | None:
        with self._lock:
            if not config.enable_parallelization or config.thread_pool_size == 1:
                return None
            size = config.thread_pool_size
            if size not in self._pools:
                self._pools[size] = ThreadPoolExecutor(
                    max_workers=size, thread_name_prefix="arcman-worker"
                )
            return self._pools[size].submit

    def _run(
        self,
        kind: str,
        config: ArchiveConfig | None,
        work: Callable[[ArchiveConfig, Submit | None, PhaseClock], T],
        measure: Callable[[T], tuple[int, int, int]],
    ) -> T:
        cfg = _checked(self.config if config is None else config)
        self._begin()
        error: Exception | None = None
        try:
            submit = self._submit(cfg)
            clock = PhaseClock()
            started = time.perf_counter()
            result = work(cfg, submit, clock)
            wall = time.perf_counter() - started
            files, bytes_in, bytes_out = measure(result)
            # Recorded before _end(): once close() has returned, get_stats() holds every
            # operation it waited for.
            self._stats.record(
                kind,
                parallel=submit is not None,
                files=files,
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                wall=wall,
                phases=clock.snapshot(),
            )
        except CallbackFailed as failed:
            self._stats.record_failure(kind)
            error = failed.error
        except BaseException:
            self._stats.record_failure(kind)
            raise
        finally:
            self._end()
        if error is not None:
            # The caller's own exception, as its callback raised it. Raised here, not inside
            # the handler: there it would get the CallbackFailed (which holds it) as its
            # __context__, a cycle that kept every frame of the operation, and the files they
            # had open, alive until the garbage collector ran.
            try:
                raise error
            finally:
                error = None
        return result

    def create_archive(
        self,
        source_dir: str | os.PathLike[str],
        archive_path: str | os.PathLike[str] | IO[bytes],
        config: ArchiveConfig | None = None,
    ) -> ArchiveMetadata:
        """Archive ``source_dir`` into ``archive_path`` (format from its extension), or into
        a binary stream (format from ``config.format``), with no sidecars."""
        source, archive = _path(source_dir), _archive(archive_path)

        def work(cfg: ArchiveConfig, submit: Submit | None, clock: PhaseClock) -> ArchiveMetadata:
            from ._create.create import create_archive as _create

            return _create(source, archive, cfg, submit, clock)

        return self._run("create", config, work, _sizes)

    def extract_archive(
        self,
        archive_path: str | os.PathLike[str] | IO[bytes],
        dest_dir: str | os.PathLike[str],
        config: ArchiveConfig | None = None,
        verify_integrity: bool = True,
        *,
        replace: bool = False,
        keep_previous: bool = False,
        expected_sha256: str | None = None,
        strip_components: int = 0,
    ) -> ArchiveMetadata:
        """Extract into ``dest_dir`` through a verified staging tree, then commit atomically.

        With ``replace`` and ``keep_previous`` the replaced tree is kept as ``<dest_dir>.prev``
        (an older one is discarded) so that ``rollback(dest_dir)`` can bring it back;
        ``keep_previous`` without ``replace`` is a ConfigError, as it would keep nothing.
        ``archive_path`` may also be a binary stream (``sys.stdin.buffer``, a socket's or an
        HTTP response's), read once from where it is (see ``_archive``). Interrupted while the
        stream stalls, this raises at once and leaves the waiting read to a daemon thread
        (reading a buffered stream through its descriptor, so that the program can exit).
        ``expected_sha256``
        is the archive's SHA-256 (hex) from a channel you trust: checked instead of its
        .sha256 sidecar, and for a stream the only check of the archive as a whole; a
        mismatch is an IntegrityError, with nothing committed. ``strip_components`` drops that
        many leading components from every name, as tar's option of that name does (a release
        tarball's ``app-1.2/``): directories at or above that depth are not extracted, and any
        other member there is an UnsafeMemberError, as it would be lost; the manifest is still
        checked against the names in the archive.
        """
        archive, dest = _archive(archive_path), _path(dest_dir)
        flags = {"verify_integrity": verify_integrity, "replace": replace,
                 "keep_previous": keep_previous}
        for name, value in flags.items():
            # Not truthiness: replace="false" replaced (and discarded) the destination.
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be a bool, not {value!r}")
        if keep_previous and not replace:
            raise ConfigError("keep_previous needs replace=True: without it nothing is replaced")
        _check_strip(strip_components)
        expected = _digest(expected_sha256)

        def work(cfg: ArchiveConfig, submit: Submit | None, clock: PhaseClock) -> ArchiveMetadata:
            from ._extract import extract as _extract

            return _extract.extract_archive(
                archive, dest, cfg, submit, clock,
                verify_integrity=verify_integrity, replace=replace, keep_previous=keep_previous,
                expected_sha256=expected, strip_components=strip_components,
            )

        return self._run("extract", config, work, _sizes)

    def verify_archive(
        self, archive_path: str | os.PathLike[str] | IO[bytes], config: ArchiveConfig | None = None,
        *, expected_sha256: str | None = None,
    ) -> ArchiveMetadata:
        """Check everything that can be checked; raise IntegrityError naming what failed
        (UnsafeMemberError/LimitExceededError for what extraction would refuse, SourceError for
        an unreadable file, UnsupportedFormatError for one that is no archive). A stream, and
        ``expected_sha256``, are taken as extract_archive takes them."""
        archive, expected = _archive(archive_path), _digest(expected_sha256)

        def work(cfg: ArchiveConfig, submit: Submit | None, clock: PhaseClock) -> ArchiveMetadata:
            from ._extract import extract as _extract

            return _extract.verify_archive(archive, cfg, submit, clock, expected)

        return self._run("verify", config, work, _sizes)

    def verify_archive_integrity(self, archive_path: str | os.PathLike[str] | IO[bytes]) -> bool:
        """True when the archive is intact; otherwise it raises as ``verify_archive`` does."""
        self.verify_archive(archive_path)
        return True

    def list_archive(
        self, archive_path: str | os.PathLike[str] | IO[bytes], config: ArchiveConfig | None = None,
        *, strip_components: int = 0,
    ) -> Sequence[ArchiveEntry]:
        """Every member, checked as ``verify_archive`` checks them, in archive order: a
        sequence that makes each ArchiveEntry as it is read (a few dozen bytes a member).
        ``strip_components``: named as ``extract_archive`` with it names them (what is
        stripped away left out), to compare with a tree so extracted."""
        archive = _archive(archive_path)
        _check_strip(strip_components)

        def work(
            cfg: ArchiveConfig, submit: Submit | None, clock: PhaseClock
        ) -> Sequence[ArchiveEntry]:
            from ._extract import extract as _extract

            return _extract.list_archive(archive, cfg, submit, clock, strip_components)

        return self._run("list", config, work, lambda r: (sum(e.type == FILE for e in r), 0, 0))

    def rollback(self, dest_dir: str | os.PathLike[str]) -> None:
        """Swap ``dest_dir`` with ``<dest_dir>.prev`` kept by ``keep_previous``; again to undo."""
        from ._extract.commit import rollback

        rollback(os.path.abspath(_path(dest_dir)))

    def get_stats(self) -> dict[str, Any]:
        stats = self._stats.snapshot()
        with self._lock:
            stats["pool_size"] = self.config.thread_pool_size
            stats["pool_alive"] = bool(self._pools)
        return stats


def _check_strip(strip_components: object) -> None:
    if isinstance(strip_components, bool) or not isinstance(strip_components, int) or (
        strip_components < 0
    ):
        raise ConfigError(
            f"strip_components must be an integer of 0 or more, not {strip_components!r}"
        )


def _path(value: object) -> str:
    """A path argument as a str. A bytes path, which the signatures do not take, failed
    midway with a TypeError from a str operation, or as a SourceError naming a member of a
    source directory that exists."""
    path = os.fspath(value)  # type: ignore[call-overload]  # TypeError for None, 3, ...
    if not isinstance(path, str):
        raise TypeError(f"expected a str or os.PathLike[str] path, not {path!r}")
    if not path:  # os.path.abspath("") is the working directory, which replace=True replaced
        raise ConfigError("a path is empty (the current directory is '.')")
    return path


def _archive(value: object) -> str | IO[bytes]:
    """An archive argument: a path, or a binary stream (anything with ``read`` or ``write``).
    A stream is read from its current position to its end, once: no sidecars, a zip saved to
    a temporary file first (its directory is at its end), no size known in advance unless it
    is a regular file (else a progress total of 0 until the end); or written, with no
    sidecars."""
    if isinstance(value, str | os.PathLike):
        return _path(value)
    if callable(getattr(value, "read", None)) or callable(getattr(value, "write", None)):
        if isinstance(value, io.TextIOBase):
            raise TypeError(
                "an archive stream must be binary: sys.stdin.buffer, sys.stdout.buffer, a file "
                "opened with 'rb' or 'wb'"
            )
        return value  # type: ignore[return-value]  # duck-typed: read(n) or write(b)
    return _path(value)


def _digest(value: object) -> str | None:
    """An expected SHA-256 as 64 lowercase hex digits (None: none given)."""
    if value is None:
        return None
    text = value.strip().lower() if isinstance(value, str) else ""
    if len(text) != 64 or text.strip("0123456789abcdef"):
        raise ConfigError(f"expected_sha256 must be 64 hex digits, not {value!r}")
    return text


def _checked(config: object) -> ArchiveConfig:
    """``config``, validated again: an ArchiveConfig is checked when it is built, but its
    fields can be set afterwards (``thread_pool_size = 0`` failed deep in the pool with a
    ValueError, ``= 64`` started 64 threads past the CPU cap, ``limits = None`` an
    AttributeError in extraction)."""
    if not isinstance(config, ArchiveConfig):
        raise ConfigError(f"config must be an ArchiveConfig, not {type(config).__name__}")
    config.__post_init__()
    return config


def _sizes(meta: ArchiveMetadata) -> tuple[int, int, int]:
    return meta.file_count, meta.uncompressed_size, meta.compressed_size
