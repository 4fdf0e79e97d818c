"""Extract, verify and list: decompress -> check each member -> write (or hash) -> verify ->
commit.

One scan serves all three: the member source yields members in order, the guard judges each,
a sink writes (StagingTree) or only hashes (HashSink) them, and the manifest, which is the
archive's last member, is checked against what was seen. Extraction commits the staging tree
only after that check; any failure removes it and leaves the destination as it was. Memory
does not grow with the member count beyond the guard's hashes and the result's NameList: what
was seen and the manifest are both spooled (see check.py) and compared as streams.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING

from .._atomic import describe_os_error, remove_tree
from .._config import ArchiveConfig
from .._errors import (
    ArchiveError,
    CorruptArchiveError,
    DestinationError,
    IntegrityError,
    UnsafeMemberError,
)
from .._formats import CompressionFormat
from .._manifest import (
    DIR,
    FILE,
    MANIFEST_NAME,
    SYMLINK,
    TAR_MANIFEST_MARK,
    ZIP_MANIFEST_MARK,
    SpooledManifest,
)
from .._metadata import ArchiveEntry, ArchiveMetadata, EntryList, utc_timestamp
from .._names import NameList
from .._progress import Progress
from .._stats import PhaseClock
from .._workers import Submit, codec_share, members_share, start
from .batch import Digest
from .check import ObservedLog, check_against_manifest, pack_record
from .commit import check_destination, commit, ensure_space, make_staging
from .decompress import DecompressedStream
from .members import HARDLINK, Data, Member, open_zip, tar_members, zip_members
from .safety import MemberGuard, normalize_name, strip_name
from .source import ArchiveSource
from .stage import HashSink, MemberSink, StagingTree

if TYPE_CHECKING:  # zipfile (~4.5 ms with pathlib) is imported by the zip paths only
    import zipfile

log = logging.getLogger("arcman")

SMALL_MEMBER = 1024 * 1024
_META_HEAD = 64 * 1024  # of the .meta sidecar: its fields before the member list
CHUNK = 1024 * 1024
# zipfile.BadZipFile is not here: members.py turns zipfile's errors into CorruptArchiveError.
_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)


@dataclass
class Scan:
    """What a scan saw; a context manager, as it holds the spools of members and manifest."""

    fmt: CompressionFormat
    compressed_size: int
    observed: ObservedLog = field(default_factory=ObservedLog)
    names: NameList = field(default_factory=NameList)
    # A listing's names as the archive spells them (``./a``), when it will strip components.
    raw_names: NameList | None = None
    file_count: int = 0
    manifest: SpooledManifest | None = None
    uncompressed_size: int = 0
    checksum: str = ""

    @property
    def verification(self) -> str:
        return "manifest" if self.manifest is not None else "container"

    def close(self) -> None:
        self.observed.close()
        if self.manifest is not None:
            self.manifest.close()

    def __enter__(self) -> Scan:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _read_some(member: Member, n: int) -> Data:
    """Up to ``n`` bytes of the member, at least one if n is: a sparse member's reads stop short
    where a hole starts or ends."""
    assert member.read is not None
    try:
        data = member.read(n)
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise CorruptArchiveError(f"cannot read member {member.name!r}: {exc}") from exc
    if not data and n:
        raise CorruptArchiveError(f"member {member.name!r} is truncated")
    return data


def _read_exactly(member: Member, n: int) -> Data:
    data = _read_some(member, n)
    if len(data) == n:
        return data
    pieces = [data]
    while (n := n - len(data)) > 0:
        data = _read_some(member, n)
        pieces.append(data)
    return b"".join(pieces)


def _chunks(member: Member, after_chunk: Callable[[str | None], None] | None) -> Iterator[Data]:
    """A large member's data, ``after_chunk`` run after each chunk (a bomb is one member)."""
    remaining = member.size
    while remaining:
        chunk = _read_some(member, min(CHUNK, remaining))
        remaining -= len(chunk)
        if after_chunk is not None:
            after_chunk(None)
        yield chunk


def _after_chunk(
    guard: MemberGuard | None, stream: DecompressedStream | None, progress: Progress
) -> Callable[[str | None], None] | None:
    """What a tar stream does after each member (named) and each MiB of a large one: progress,
    and the compression-ratio check, as far as the stream has been decoded."""
    if stream is None:
        return None

    def after_chunk(member: str | None = None) -> None:
        progress.reach(stream.consumed, member)
        if guard is not None:
            guard.check_ratio(stream.produced, stream.consumed)

    return after_chunk


def _hash_file(path: str, stop: threading.Event) -> str:
    """The file's SHA-256; given up (the result then unused) once ``stop`` is set."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while not stop.is_set() and (chunk := f.read(CHUNK)):
            digest.update(chunk)
    return digest.hexdigest()


def _read_sidecar(path: str, limit: int) -> bytes:
    """Up to ``limit`` bytes of the sidecar ``path``; an OSError where it cannot be read or is
    no regular file: it is opened without waiting (O_NONBLOCK), since a FIFO put in its place
    would wait for a writer for ever, and checked before it is read."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = bytearray()
        while len(data) < limit and (piece := os.read(fd, limit - len(data))):
            data += piece
        return bytes(data)
    finally:
        os.close(fd)


def _expected_checksum(archive_path: str) -> str | None:
    """The digest in ``<archive>.sha256`` (sha256sum format), if that sidecar exists."""
    try:
        fields = _read_sidecar(archive_path + ".sha256", 4096).split()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IntegrityError(f"cannot read {archive_path}.sha256: {exc.strerror}") from exc
    digest = fields[0].decode("ascii", "replace").lower() if fields else ""
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise IntegrityError(f"{archive_path}.sha256 is not in sha256sum format")
    return digest


def scan_archive(
    source: ArchiveSource,
    sink: MemberSink,
    guard: MemberGuard | None,
    config: ArchiveConfig,
    submit: Submit | None,
    clock: PhaseClock,
    *,
    verify: bool,
    expected_sha256: str | None = None,
    progress: Progress | None = None,
    raw_names: bool = False,
) -> Scan:
    """Read every member of ``source`` into ``sink`` and check what can be checked: the
    members against the manifest (``verify``), the archive against ``expected_sha256`` if
    given, else against its .sha256 sidecar (``verify``). ``progress``: the caller's, when it
    has saved a zip stream under it already (``spool_zip``), to go on from there. ``raw_names``:
    keep the names as the archive spells them too (``Scan.raw_names``)."""
    if progress is None:
        progress = Progress(config, source.size)
    spool_zip(source, None, config, clock, progress)  # for verify and list; extract's is done
    path = source.path
    expected = expected_sha256
    if expected is None and verify and path is not None:
        expected = _expected_checksum(path)
    stop = threading.Event()  # set if the scan fails: the archive's hash is not waited for
    checksum_job: Future[str] | None = (
        start(submit, _hash_file, path, stop) if path is not None and expected is not None
        else None
    )
    scan = Scan(source.fmt, source.size or 0, raw_names=NameList() if raw_names else None)
    try:
        _scan_members(
            source, scan, sink, guard, submit, clock, progress,
            verify=verify, read_ahead=codec_share(config.memory_budget),
        )
        with clock.measure("verification"):
            scan.observed.finish()  # surfaces worker errors before judging contents
            if verify and scan.manifest is not None:
                check_against_manifest(scan.observed, scan.manifest)
            if checksum_job is not None:
                scan.checksum = checksum_job.result()
            elif path is None:
                scan.checksum = source.streamed_sha256()
            if expected is not None and scan.checksum != expected:
                what = "its .sha256 checksum" if expected_sha256 is None else "the SHA-256 given"
                raise IntegrityError(f"{os.path.basename(source.name)} does not match {what}")
    except BaseException:
        stop.set()
        scan.close()
        raise
    progress.finish()
    return scan


def _scan_members(
    source: ArchiveSource,
    scan: Scan,
    sink: MemberSink,
    guard: MemberGuard | None,
    submit: Submit | None,
    clock: PhaseClock,
    progress: Progress,
    *,
    verify: bool,
    read_ahead: int,
) -> None:
    """Read every member into the sink and the log, and the manifest into its spool."""
    stream: DecompressedStream | None = None
    pax_headers: dict[str, str] = {}
    announced = False  # whether the archive says it carries a manifest
    archive: zipfile.ZipFile | None = None
    members: Generator[Member, None, None] | None = None
    try:
        if scan.fmt is CompressionFormat.ZIP:
            archive = open_zip(source.zip_file())
            announced = archive.comment == ZIP_MANIFEST_MARK
            members = zip_members(archive)
        else:
            stream = DecompressedStream(
                source.open(), scan.fmt, clock, threaded=submit is not None,
                read_ahead=read_ahead,
            )
            members = tar_members(stream, clock, pax_headers)
        zip_end = 0
        after_chunk = _after_chunk(guard, stream, progress)
        for member in members:
            if scan.manifest is not None:
                raise IntegrityError(f"member {member.name!r} follows the manifest", member.name)
            if guard is not None and stream is None:
                # A zip declares its members' sizes, and no more than that is read: its ratio
                # is checked before a member is, on the archive's bytes up to that member.
                zip_end = max(zip_end, member.end)
                size = member.size if member.kind == FILE else 0
                guard.check_ratio(scan.uncompressed_size + size, zip_end)
            if member.kind == FILE and _is_manifest(member.name):
                if guard is not None:
                    guard.count(member, manifest=True)
                scan.manifest = SpooledManifest()
                for chunk in _chunks(member, after_chunk):
                    scan.manifest.write(chunk)
                continue
            _dispatch(member, scan, sink, guard, after_chunk)
            scan.uncompressed_size += member.size if member.kind == FILE else 0
            if after_chunk is not None:
                after_chunk(member.name)
            else:
                progress.reach(member.end, member.name)
        sink.flush()
        if source.path is None and stream is not None:
            # All of it: the parser reads past the tar's end, to check that only zeros follow.
            scan.compressed_size = stream.consumed
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise CorruptArchiveError(f"damaged archive: {exc}") from exc
    finally:
        if stream is not None:
            stream.close()
        if members is not None:
            members.close()  # a zip's member stream in hand holds the archive's file open
        if archive is not None:
            archive.close()
    if scan.manifest is None and verify and (announced or TAR_MANIFEST_MARK in pax_headers):
        raise IntegrityError(f"the archive announces {MANIFEST_NAME}, which is missing")


def _is_manifest(name: str) -> bool:
    if MANIFEST_NAME not in name:  # the common case, without normalizing every name twice
        return False
    try:
        return normalize_name(name, zip_rules=False) == MANIFEST_NAME
    except ArchiveError:
        return False


def _dispatch(
    member: Member, scan: Scan, sink: MemberSink, guard: MemberGuard | None,
    after_chunk: Callable[[str | None], None] | None,
) -> None:
    # The path in the archive, where it is not the one in the destination (strip_components),
    # and a link's target as the archive (and so its manifest) gives it: the guard changes a
    # hard link's to its path in the destination.
    target = member.target
    listed = guard.strip(member) if guard is not None and guard.strip_components else None
    path = guard.check(member) if guard is not None else _listed_path(member.name, scan.fmt)
    if path is None:
        if listed is not None:  # a directory stripped away: still one the manifest lists
            scan.observed.add(pack_record(listed, DIR, 0, member.mode, member.mtime, None), None)
        return
    kind = member.kind
    record = pack_record(
        listed or path, kind, member.size if kind == FILE else 0, member.mode, member.mtime,
        target if kind in (SYMLINK, HARDLINK) else None,
    )
    digest: Digest | bytes | None = None
    mtime = member.mtime if member.exact_mtime is None else member.exact_mtime
    if kind == DIR:
        sink.add_dir(path, member.mode, mtime)
    elif kind == FILE:
        scan.file_count += 1
        if member.size <= SMALL_MEMBER:
            # A copy: a view would pin its whole 4 MiB piece until a worker is done with it.
            data = bytes(_read_exactly(member, member.size))
            digest = sink.add_file(path, data, member.mode, mtime)
        else:
            digest = sink.add_large(path, _chunks(member, after_chunk), member.mode, mtime)
    elif kind == SYMLINK:
        sink.add_symlink(path, member.target or "", mtime)
    elif kind == HARDLINK:
        sink.add_hardlink(path, member.target or "")
    scan.observed.add(record, digest)
    scan.names.append(path)
    if scan.raw_names is not None:
        scan.raw_names.append(member.name)


def _listed_path(name: str, fmt: CompressionFormat) -> str | None:
    """A member's path where no guard judges members (list): the path extraction would give
    it, so that it matches the manifest's, or its raw name where extraction would refuse it."""
    try:
        return normalize_name(name, zip_rules=fmt is CompressionFormat.ZIP)
    except UnsafeMemberError:
        return name


def _probe(directory: str) -> tuple[bool, bool]:
    """What the staging file system does with names and modes, told by one probe file:
    whether it folds case (macOS's and Windows's defaults do), and whether it keeps Unix modes
    (FAT and exFAT, a Pi's boot partition or a USB stick, refuse a chmod they cannot store,
    EPERM, or ENOSYS through FUSE; some network file systems accept it and drop it)."""
    name = f"arcman-probe-{os.urandom(4).hex()}"
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:  # ENOSPC, EDQUOT, a FAT16 root directory that is full
        raise DestinationError(describe_os_error(exc, os.path.dirname(directory))) from exc
    try:
        try:
            os.fchmod(fd, 0o640)
            keeps_modes = stat.S_IMODE(os.fstat(fd).st_mode) == 0o640
        except OSError:
            keeps_modes = False
        return os.path.exists(os.path.join(directory, name.upper())), keeps_modes
    finally:
        os.close(fd)
        os.unlink(path)


# What a zip may hold beyond its members' bytes, per member: a local and a central header
# (76 bytes), its name twice and a data descriptor; 1 KiB covers names of ~450 bytes.
_ZIP_ENTRY_ALLOWANCE = 1024
_UNCOUNTED_MEMBERS = 65536  # the allowance's member count where max_members is None


def spool_zip(
    source: ArchiveSource, directory: str | None, config: ArchiveConfig, clock: PhaseClock,
    progress: Progress,
) -> None:
    """Save a zip that comes from a stream to a temporary file in ``directory`` (None: the
    system's) before it is read; a no-op for anything else. It may be no larger than the
    members the total size limit lets through, stored, with their headers. ``progress``
    follows the bytes as they arrive, the slow part from a network; reading the saved copy
    then goes on to the end from there."""
    if not source.needs_spool:
        return
    limits = config.limits
    limit = None if limits.max_total_size is None else limits.max_total_size + (
        _ZIP_ENTRY_ALLOWANCE * (limits.max_members or _UNCOUNTED_MEMBERS)
    )
    with clock.measure("spooling"):
        source.spool(directory, limit, progress.reach)


def _known_size(source: ArchiveSource) -> tuple[int, str] | None:
    """The expanded size, when the archive declares it before extraction, and where it was
    read: a zip's central directory, or the ``.meta`` sidecar arcman writes beside every
    archive file (named in a refusal, so that a wrong one can be found and removed)."""
    if source.fmt is CompressionFormat.ZIP:
        with open_zip(source.zip_file()) as archive:
            return sum(info.file_size for info in archive.infolist()), "the zip's directory"
    if source.path is None:
        return None
    meta = source.path + ".meta"
    try:
        head = _read_sidecar(meta, _META_HEAD).decode("utf-8", "replace")
        # The member list follows the sizes: a million names are not decoded for one number
        # (json.load of the whole sidecar was the peak of extracting a million files).
        cut = head.find('\n  "files": [')
        sizes = json.loads(head[:cut].rstrip().rstrip(",") + "}" if cut >= 0 else head)
        size, compressed = sizes.get("uncompressed_size"), sizes.get("compressed_size")
        # A sidecar left from an archive since replaced would refuse this one for space.
        if compressed != os.path.getsize(source.path):
            return None
    except (OSError, ValueError, AttributeError, RecursionError):  # a damaged sidecar: no hint
        return None
    return (size, repr(meta)) if isinstance(size, int) and size >= 0 else None


def _guard(
    config: ArchiveConfig, fmt: CompressionFormat, case_insensitive: bool, strip_components: int = 0
) -> MemberGuard:
    return MemberGuard(
        config.limits, case_insensitive=case_insensitive, zip_rules=fmt is CompressionFormat.ZIP,
        strip_components=strip_components,
    )


def extract_archive(
    archive: str | IO[bytes],
    dest_dir: str,
    config: ArchiveConfig,
    submit: Submit | None,
    clock: PhaseClock,
    *,
    verify_integrity: bool,
    replace: bool,
    keep_previous: bool = False,
    expected_sha256: str | None = None,
    strip_components: int = 0,
) -> ArchiveMetadata:
    dest = os.path.abspath(dest_dir)
    source = ArchiveSource(archive)
    check_destination(dest, replace, keep_previous)
    staging = make_staging(dest)
    sink: StagingTree | None = None
    try:
        # A zip from a stream is saved beside the tree, on the file system whose space the
        # tree is then checked against.
        progress = Progress(config, source.size)
        spool_zip(source, staging, config, clock, progress)
        ensure_space(staging, _known_size(source))
        folds_case, keeps_modes = _probe(staging)
        if not keeps_modes:
            log.warning(
                "the file system of %s keeps no Unix permissions (FAT or exFAT?): the tree gets "
                "its defaults, not the archive's modes", dest,
            )
        sink = StagingTree(
            staging, submit, members_share(config.memory_budget), clock,
            preserve_permissions=config.preserve_permissions,
            preserve_timestamps=config.preserve_timestamps,
            apply_modes=keeps_modes,
        )
        guard = _guard(config, source.fmt, folds_case, strip_components)
        with scan_archive(
            source, sink, guard, config, submit, clock, verify=verify_integrity,
            expected_sha256=expected_sha256, progress=progress,
        ) as scan:
            sink.finish()
    except BaseException:
        if sink is not None:
            sink.drain()
        remove_tree(staging)
        raise
    finally:
        source.close()
    with clock.measure("commit"):
        # commit owns staging from here: it removes it if it fails.
        commit(
            staging, dest, replace, keep_previous, apply_mode=keeps_modes,
            writeback=sink.writeback,
        )
    return _metadata(source, scan, clock, verify_integrity)


def verify_archive(
    archive: str | IO[bytes], config: ArchiveConfig, submit: Submit | None, clock: PhaseClock,
    expected_sha256: str | None = None,
) -> ArchiveMetadata:
    sink = HashSink(submit, members_share(config.memory_budget), clock)
    with ArchiveSource(archive) as source, scan_archive(
        source, sink, _guard(config, source.fmt, False), config, submit, clock, verify=True,
        expected_sha256=expected_sha256,
    ) as scan:
        sink.finish()
        return _metadata(source, scan, clock, True)


def list_archive(
    archive: str | IO[bytes], config: ArchiveConfig, submit: Submit | None, clock: PhaseClock,
    strip_components: int = 0,
) -> EntryList:
    """Every member with its SHA-256: from the manifest when there is one (once every member
    has been checked against it, as verify does), else computed. With ``strip_components``,
    named as extraction names them (see ``_stripped``)."""
    sink = HashSink(submit, members_share(config.memory_budget), clock)
    with ArchiveSource(archive) as source, scan_archive(
        source, sink, None, config, submit, clock, verify=True,
        raw_names=strip_components > 0,
    ) as scan:
        listed = scan.manifest if scan.manifest is not None else scan.observed
        entries: Iterable[ArchiveEntry] = (
            ArchiveEntry(e.path, e.kind, e.size, e.mode, e.mtime, e.sha256, e.target)
            for e in listed
        )
        if strip_components:
            entries = _stripped(entries, scan, strip_components)
        return EntryList(entries)


def _stripped(entries: Iterable[ArchiveEntry], scan: Scan, count: int) -> Iterator[ArchiveEntry]:
    """``entries`` named as ``strip_components=count`` extracts them, directories stripped
    away left out. Components are counted in the names the archive spells, as extraction
    counts them (``./app/x`` is ``app/x`` stripped once, not ``x``), not in the listed ones:
    a hard link's target too."""
    assert scan.raw_names is not None
    spelled = dict(zip((o.path for o in scan.observed), scan.raw_names, strict=True))
    zip_rules = scan.fmt is CompressionFormat.ZIP
    for entry in entries:
        name = strip_name(spelled.get(entry.name, entry.name), entry.type, count)
        if name is None or (path := normalize_name(name, zip_rules=zip_rules)) is None:
            continue
        target = entry.target
        if entry.type == HARDLINK and target is not None:
            target = strip_name(spelled.get(target, target), HARDLINK, count)
        yield ArchiveEntry(
            path, entry.type, entry.size, entry.mode, entry.mtime, entry.sha256, target
        )


def _metadata(
    source: ArchiveSource, scan: Scan, clock: PhaseClock, verified: bool
) -> ArchiveMetadata:
    return ArchiveMetadata(
        filename=source.path or source.name,
        format=scan.fmt,
        created_at=utc_timestamp(),
        file_count=scan.file_count,
        uncompressed_size=scan.uncompressed_size,
        compressed_size=scan.compressed_size,
        checksum_sha256=scan.checksum,
        files=scan.names,
        timings=clock.snapshot(),
        verification=scan.verification if verified else "none",
    )
