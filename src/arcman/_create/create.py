"""Create: collect -> read and hash -> write (tar or zip records, in order) -> compress.

``create_archive`` wires the stages together for one operation and writes the archive, and its
``.sha256`` and ``.meta`` sidecars, atomically; or writes the archive to a stream (stdout).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from .._atomic import (
    AtomicFile,
    HashingWriter,
    check_name_length,
    clean_stale,
    describe_os_error,
    directory_locked,
    may_stall,
)
from .._config import MAX_EPOCH, ArchiveConfig
from .._errors import ConfigError, DestinationError, UnsupportedFormatError
from .._formats import CompressionFormat
from .._manifest import FILE, HARDLINK, reproducible_mode
from .._metadata import ArchiveMetadata, utc_timestamp
from .._names import NameList
from .._progress import Progress
from .._stats import PhaseClock
from .._workers import Submit, members_share
from .collect import Collector, SourceEntry, check_name
from .compress import open_sink
from .read import ContentReader, LargeFile, Records, Skipped
from .tar_writer import TarWriter

if TYPE_CHECKING:
    from .zip_writer import ZipWriter

log = logging.getLogger("arcman")


def sidecar_paths(archive_path: str) -> tuple[str, str]:
    return archive_path + ".sha256", archive_path + ".meta"


def create_archive(
    source_dir: str,
    archive: str | IO[bytes],
    config: ArchiveConfig,
    submit: Submit | None,
    clock: PhaseClock,
) -> ArchiveMetadata:
    if isinstance(archive, str):
        archive_path = os.path.abspath(archive)
        fmt = _output_format(config.format, archive_path)
    elif config.format is None:
        raise ConfigError("an archive written to a stream needs a format (--format)")
    else:
        fmt = config.format
    level = config.level_for(fmt)
    skip = config.on_error == "skip"
    epoch = _fixed_mtime(config)
    # Opened last: a ConfigError above leaves no temporary behind.
    out: AtomicFile | StreamOutput
    if isinstance(archive, str) and _is_special(archive_path):
        out = DeviceOutput(archive_path)
        excluded = {archive_path}
    elif isinstance(archive, str):
        if os.path.islink(archive_path):
            # As for extract's DEST: the rename would replace the link, and writing through
            # it would change a file of another name (latest.tar.gz -> app-1.2.tar.gz).
            raise DestinationError(
                f"output {archive_path!r} is a symlink (to {os.readlink(archive_path)!r}): the "
                "archive is renamed into place and would replace the link; give the path it "
                "points to, or remove the link"
            )
        check_name_length(archive_path, ".sha256", ".meta")
        checksum_path, meta_path = sidecar_paths(archive_path)
        for output in (archive_path, checksum_path, meta_path):
            clean_stale(output)  # a killed run's temporaries must not be archived, nor linger
        out = AtomicFile(archive_path, supersedes=(checksum_path, meta_path))
        excluded = {archive_path, checksum_path, meta_path, out.temp_path}
    else:
        out = StreamOutput(archive)
        archive_path, excluded = out.name, set()
    unread: set[int] = set()  # rows of the table that were skipped while reading
    unread_paths: set[str] = set()  # their paths, which hard links may name
    read_skips: list[str] = []
    total = files = 0
    with (
        _Sidecars() as sidecars,  # committed last, after the archive
        out,
        ExitStack() as threads,  # the sink's, ended with the block
    ):
        collector = Collector(
            source_dir,
            exclude_patterns=config.exclude_patterns,
            # The archive's temporary too: the tree is still being walked while it fills.
            exclude_paths=excluded,
            follow_symlinks=config.follow_symlinks,
            max_file_size=config.max_file_size,
            skip_errors=skip,
            name_check=functools.partial(check_name, zip_rules=fmt is CompressionFormat.ZIP),
            hard_links=config.hard_links and fmt is not CompressionFormat.ZIP,  # zip has none
        )
        walked: Iterable[SourceEntry]
        if config.progress_callback is not None:
            # The callback is told (done, total) from the start: collect the tree first.
            with clock.measure("collection"):
                walked = collector.collect().entries
        else:
            walked = _measured(collector.walk(), clock)
        entries = walked if epoch is None else _normalized(walked, epoch)
        progress = Progress(config, collector.entries.total_bytes)  # 0 if walking: unused
        writer: TarWriter | ZipWriter
        prepare: Callable[[bytes], Any] | None = None
        if fmt is CompressionFormat.ZIP:
            from .zip_writer import ZipWriter  # zipfile: ~4.5 ms that tar formats skip

            writer = ZipWriter(
                out, level, submit, config.threads, clock, config.memory_budget  # type: ignore[arg-type]
            )
            prepare = writer.prepare
        else:
            sink = threads.enter_context(
                open_sink(fmt, level, out, submit, config.threads, clock, config.memory_budget)
            )
            writer = TarWriter(sink, owner_names=epoch is None)
        threads.callback(writer.manifest.close)  # its spool, when the run fails before close()
        reader = ContentReader(
            os.path.realpath(source_dir),
            entries,
            submit=submit,
            budget=members_share(config.memory_budget),
            skip_errors=skip,
            follow_symlinks=config.follow_symlinks,
            clock=clock,
            prepare=prepare,
            owner_names=writer.owner_names if isinstance(writer, TarWriter) else None,
        )
        row = -1  # the table row of the entry in hand
        for item in reader:
            if isinstance(item, Records):  # only a TarWriter's reader makes them
                assert isinstance(writer, TarWriter)
                nbytes = writer.add_records(item)
                for entry in item.entries:
                    progress.advance(entry.size, entry.path)
                total += nbytes
                files += sum(entry.kind == FILE for entry in item.entries)
                row += len(item.entries)
                continue
            entry, content = item
            row += 1
            if entry.kind == HARDLINK and entry.target in unread_paths:
                # The same file, so the same failure: the link would name no member.
                content = Skipped(f"hard link to {entry.target}, which was skipped")
            if isinstance(content, Skipped):
                read_skips.append(f"{entry.path}: {content.reason}")
                unread.add(row)
                unread_paths.add(entry.path)
                progress.advance(entry.size, entry.path)
                continue
            if isinstance(content, LargeFile):  # its bytes are told chunk by chunk
                # Open since the reader yielded it: closed here whatever fails before or while
                # its chunks are read (the item callback, the header's write), or its raw fd
                # would outlive the operation.
                try:
                    progress.advance(0, entry.path)
                    content.on_chunk = progress.advance
                    nbytes = writer.add(entry, content)
                finally:
                    content.close()
            else:
                nbytes = writer.add(entry, content)
                progress.advance(nbytes, entry.path)
            total += nbytes
            files += entry.kind == FILE
        writer.close()
        progress.finish()
        skipped = [f"{path}: {reason}" for path, reason in collector.skipped] + read_skips
        for line in skipped:
            log.warning("skipped %s", line)
        table = collector.entries

        metadata = ArchiveMetadata(
            filename=archive_path,
            format=fmt,
            created_at=utc_timestamp(epoch),
            file_count=files,
            uncompressed_size=total,
            compressed_size=out.size,
            checksum_sha256=out.sha256,
            # The table's own names when every row was written: no second list of a big tree.
            files=table.names if not unread else NameList(
                name for row, name in enumerate(table.names) if row not in unread
            ),
            timings=clock.snapshot(),
            verification="manifest",
            skipped=skipped,
        )
        # The sidecars are written (to temporaries) before the archive is renamed into place,
        # and renamed after it: a disk that fills up while they are written fails the run
        # with the old archive still in place, instead of after replacing it. A stream has
        # none (its checksum is in the result).
        if isinstance(out, StreamOutput):
            return metadata
        if config.create_checksums:
            line = f"{metadata.checksum_sha256}  {os.path.basename(archive_path)}\n"
            sidecars.add(checksum_path).write(line.encode("utf-8", "surrogateescape"))
        if config.include_metadata:
            meta = sidecars.add(meta_path)
            for chunk in metadata.json_chunks():
                meta.write(chunk.encode())
            meta.write(b"\n")
        sidecars.ready(os.path.dirname(archive_path))
    return metadata


class StreamOutput(HashingWriter):
    """An archive written to a stream (stdout, a socket), with nothing to rename. A failure
    midway leaves the reader a truncated archive, which arcman refuses as a whole (its
    manifest is the last member) and tar reports."""

    def __init__(self, stream: IO[bytes]) -> None:
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"cannot write an archive to {stream!r}: it has no write()")
        label = getattr(stream, "name", None)
        self.name = label if isinstance(label, str) else "<stream>"
        super().__init__(_past_the_buffer(stream, self.name), self.name)

    def __enter__(self) -> StreamOutput:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.flush()


def _past_the_buffer(stream: IO[bytes], name: str) -> IO[bytes]:
    """``stream``, or for a buffered writer to a pipe or a socket (``sys.stdout.buffer``) its
    descriptor, once what it holds is flushed. Interrupted, a create leaves a write that a
    stalled stream holds up to the output thread (ThreadedWriter.stop); in a BufferedWriter's
    write that thread holds the writer's lock, which the interpreter's exit needs to flush it
    ("Fatal Python error: _enter_buffered_busy"); a FileIO's write holds none."""
    if not isinstance(stream, io.BufferedWriter) or not may_stall(stream):
        return stream
    try:
        stream.flush()
        return io.FileIO(stream.fileno(), "wb", closefd=False)
    except OSError as exc:
        raise DestinationError(describe_os_error(exc, name)) from exc
    except ValueError as exc:  # the stream was closed
        raise DestinationError(f"cannot write {name}: {exc}") from exc


class DeviceOutput(StreamOutput):
    """An output path that is a device, a FIFO or a socket (``-o /dev/null``, ``-o >(ssh pi
    arcman extract - ...)``): written through, as tar writes it. A finished file renamed over
    it would replace the device node; and it gets no sidecars."""

    def __init__(self, path: str) -> None:
        try:
            # Unbuffered: closing a buffered file waits for its lock, which the output thread
            # holds while a write to a FIFO nobody reads waits (see ThreadedWriter.stop).
            stream = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by __exit__
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, path)) from exc
        super().__init__(stream)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            super().__exit__(kind, exc, tb)
        finally:
            try:
                self._file.close()
            except OSError as error:  # EPIPE: the FIFO's reader went away at the end
                if kind is None:
                    raise DestinationError(describe_os_error(error, self.name)) from error


def _is_special(path: str) -> bool:
    """Whether ``path`` exists and is a device, a FIFO or a socket (links followed)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _Sidecars:
    """The sidecars' AtomicFiles, written while the archive is still a temporary: committed
    when the block ends without error (after the archive's own commit), else discarded.
    From ready() on, their directory is locked (directory_locked) until they are committed,
    so the archive's commit and theirs are one step to another run writing the same output."""

    def __init__(self) -> None:
        self._files: list[AtomicFile] = []
        self._lock = ExitStack()

    def add(self, path: str) -> AtomicFile:
        self._files.append(AtomicFile(path))
        return self._files[-1]

    def ready(self, directory: str) -> None:
        for f in self._files:
            f.flush()  # out of their buffers: a full disk shows now, not at their commit
        self._lock.enter_context(directory_locked(directory))

    def __enter__(self) -> _Sidecars:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                for f in self._files:
                    f.commit()
        finally:
            for f in self._files:
                f.discard()  # nothing left to remove once committed
            self._lock.close()


def _output_format(requested: CompressionFormat | None, path: str) -> CompressionFormat:
    """The format to write: the output's extension's, or ``requested`` where the extension
    names none. A ``requested`` format that contradicts the extension is a ConfigError: it
    would write, say, a zip named .tar.gz, which no tool would open as what its name says."""
    try:
        named = CompressionFormat.from_extension(path)
    except UnsupportedFormatError:
        if requested is None:
            raise
        return requested
    if requested not in (None, named):
        raise ConfigError(
            f"format {requested.value} contradicts the extension of {os.path.basename(path)!r} "
            f"({named.value})"
        )
    return named


def _measured(walk: Iterator[SourceEntry], clock: PhaseClock) -> Iterator[SourceEntry]:
    """The walk, with the time spent in it (scanning directories, handing out entries) added
    to the collection phase once it is over."""
    spent = 0.0
    while True:
        started = time.perf_counter()
        entry = next(walk, None)
        spent += time.perf_counter() - started
        if entry is None:
            break
        yield entry
    clock.add("collection", spent)


def _fixed_mtime(config: ArchiveConfig) -> int | None:
    """The mtime every member gets in a reproducible archive, or None to keep real ones."""
    if config.source_date_epoch is not None:
        return config.source_date_epoch
    if not config.reproducible:
        return None
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if not env:  # unset or empty (`SOURCE_DATE_EPOCH= make`): no date given, as for Python's own
        return 0
    try:
        epoch = max(0, int(env))
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be an integer, not {env!r}") from None
    if epoch > MAX_EPOCH:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be at most {MAX_EPOCH} (year 9999), not {env}")
    return epoch


def _normalized(entries: Iterable[SourceEntry], epoch: int) -> Iterator[SourceEntry]:
    """The entries as a reproducible archive stores them: fixed mtime, owners and modes."""
    for entry in entries:
        entry.mtime = epoch
        entry.uid = entry.gid = 0
        entry.mode = reproducible_mode(entry.kind, entry.mode)
        yield entry
