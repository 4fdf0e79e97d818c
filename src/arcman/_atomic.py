"""Atomic outputs: write beside the target under a temporary name, rename into place on success.

A failure (or Ctrl-C) removes the temporary file; an existing file of the same name is never
touched until the complete new one replaces it in a single rename. Temporary siblings are named
``.NAME.arcman-<kind>-<pid>-<random>``, so a later run can tell which ones a killed process
(SIGKILL, power loss) left behind and remove them: see clean_stale().
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import select
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, Any

from ._errors import DestinationError

TEMP_MARKER = ".arcman-tmp-"
STAGING_MARKER = ".arcman-staging-"
OLD_MARKER = ".arcman-old-"
# The tree that a keep-previous commit or a rollback (without an exchange call) moves from
# DEST on its way to DEST.prev: after a crash it belongs at DEST or DEST.prev, never deleted.
PREV_MARKER = ".arcman-prev-"
# The new tree of a keep-previous commit, waiting beside DEST to be exchanged with it. Its name
# ends with the new tree's inode number, which tells a later run which tree is there after a
# crash: the new one, never deployed (removed), or DEST's old one, exchanged out (a -prev-).
NEXT_MARKER = ".arcman-next-"
# pid, then (where the system tells) a tag of the process's identity, then a random part, then
# for -next- the inode number.
_SIBLING = re.compile(
    r"\.(?P<name>.+)\.arcman-(?P<kind>tmp|staging|old|prev|next)-(?P<pid>\d+)-"
    r"(?:(?P<tag>[0-9a-f]{4})-)?[0-9a-f]{8}(?:-(?P<inode>\d+))?"
)

log = logging.getLogger("arcman")


def sibling(path: str, marker: str, inode: int | None = None) -> str:
    """A fresh temporary name beside ``path`` that records this process: its pid and, on
    Linux, a tag of its identity (see _identity); and ``inode`` if given (NEXT_MARKER)."""
    parent, name = os.path.split(path)
    tag = _identity("self")
    owner = f"{os.getpid()}-{tag}" if tag is not None else str(os.getpid())
    suffix = f"-{inode}" if inode is not None else ""
    return os.path.join(parent, f".{_stem(name)}{marker}{owner}-{os.urandom(4).hex()}{suffix}")


# The longest name a sibling's own part may take: NAME_MAX (255 bytes on every file system
# arcman targets) less the dot, the longest marker, a 7-digit pid, the tag, the random part
# and a 20-digit inode, with their dashes (59 bytes), and a margin.
_STEM_MAX = 190


def _stem(name: str) -> str:
    """``name`` as siblings of it begin: itself, or for a name too long to take the suffixes
    (a temporary of a 240-byte archive name failed with "File name too long") its first bytes
    and a hash of the whole, which tells apart two long names that begin alike."""
    encoded = os.fsencode(name)
    if len(encoded) <= _STEM_MAX:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:8]
    return f"{os.fsdecode(encoded[: _STEM_MAX - 9])}~{digest}"


def check_name_length(path: str, *suffixes: str) -> None:
    """A DestinationError, before any work, if ``path`` with one of ``suffixes`` (its
    sidecars, DEST.prev) is a name longer than its file system takes: found only when it is
    renamed into place, it would fail after the main output was committed."""
    parent, name = os.path.split(path)
    try:
        limit = os.pathconf(parent or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for suffix in suffixes:
        size = len(os.fsencode(name + suffix))
        if size > limit:
            raise DestinationError(
                f"{name + suffix!r} would be a name of {size} bytes, over the {limit} that "
                f"{parent or '.'!r} takes: give {name!r} a shorter name"
            )


def _identity(pid: int | str) -> str | None:
    """Four hex digits of a hash of the boot's id and process ``pid``'s start, in clock ticks
    since the boot (Linux's /proc; None elsewhere). After a reboot (a power cut on a Pi) pids
    are handed out again, and a daemon given a dead run's pid kept that run's leftovers from
    ever being removed; the tag tells them apart. Neither part moves when the wall clock is
    stepped, as NTP steps a Pi's, which has no real-time clock, after it boots."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the name in (...) may hold spaces
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read().strip()
        started = fields[19]  # field 22: starttime
    except (OSError, IndexError):
        return None
    return hashlib.sha256(boot + b":" + started).hexdigest()[:4]


def _alive(pid: int, tag: str | None) -> bool:
    """Whether the process that made a temporary (``pid``, and its ``tag`` where the name has
    one) may still be running. Only a tag known to differ counts against it; one that cannot
    be read counts for: deleting a live run's tree is worse than keeping a dead one's."""
    if pid == os.getpid():
        return tag is None or tag == _identity("self")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        pass
    if tag is None:
        return True
    current = _identity(pid)
    return current is None or current == tag


def clean_stale(path: str, *, including_own: bool = False) -> None:
    """Remove the temporaries that dead processes left beside ``path``, with a warning each.

    An ``-old-`` tree is what the non-atomic commit fallback had moved aside when it was
    interrupted; if ``path`` itself is missing, that tree is moved back instead of removed.
    A ``-prev-`` tree (or a ``-next-`` one that is no longer the tree its name records) was
    deployed at ``path`` and is on its way to ``path``.prev: it goes to ``path`` if that is
    missing, else to ``path``.prev, replacing the older one there. Siblings whose process is
    still running belong to a concurrent operation and are kept.
    ``including_own`` also removes this process's own: for the CLI after a signal, when its
    single operation is over, since a signal can land between a temporary's creation and the
    cleanup handler that would have removed it.
    """
    parent, name = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(parent)
    except OSError:
        return
    stem = _stem(name)
    for candidate in names:
        match = _SIBLING.fullmatch(candidate)
        if match is None or match["name"] != stem:
            continue
        pid = int(match["pid"])
        stale = os.path.join(parent, candidate)
        if _alive(pid, match["tag"]) and not (including_own and pid == os.getpid()):
            continue
        kind = match["kind"]
        if kind == "next":
            try:
                exchanged = os.lstat(stale).st_ino != int(match["inode"] or -1)
            except OSError:
                continue
            kind = "prev" if exchanged else "staging"
        if kind in ("old", "prev") and not os.path.lexists(path):
            _put_back(stale, path)
            continue
        if kind == "prev":
            # Killed after the new tree took DEST's place, before this one took DEST.prev's.
            _put_back(stale, os.path.join(parent, name + ".prev"))
            continue
        log.warning("removing %s, left by an interrupted run (pid %s)", stale, match["pid"])
        if os.path.isdir(stale) and not os.path.islink(stale):
            remove_tree(stale)
        else:
            with contextlib.suppress(OSError):
                os.unlink(stale)


def _put_back(stale: str, target: str) -> None:
    """Move a deployed tree that a killed run left under a temporary name to ``target``. One
    that cannot be moved stays where it is, with a warning, for the next run to try again:
    it is never removed."""
    try:
        older = rename_over(stale, target)
    except OSError as exc:
        log.warning("cannot move %s, left by an interrupted run, to %s: %s; it stays there",
                    stale, target, exc.strerror or exc)
        return
    log.warning("moved %s, left by an interrupted run, to %s", stale, target)
    if older is not None:
        remove_tree(older)


def rename_over(source: str, path: str) -> str | None:
    """Rename ``source`` to ``path``, which may hold a tree: that one is first moved aside, to
    a name that a later run puts back at a missing ``path`` or removes. Return where it is
    now, for the caller to remove; a failure leaves both where they were."""
    aside = None
    if os.path.lexists(path):
        aside = sibling(path, OLD_MARKER)
        os.rename(path, aside)
    try:
        os.rename(source, path)
    except BaseException:
        if aside is not None:
            os.rename(aside, path)
        raise
    return aside


def remove_tree(path: str) -> None:
    """Remove a tree of ours (a staging tree, a replaced or discarded one), with a warning if
    some of it stays.

    Without CAP_DAC_OVERRIDE, rmtree cannot empty a directory that its owner made read-only
    (a deployed tree's ``chmod 555 conf``); each of the tree's directories is then given back
    its owner's rwx, which the owner may always do, and the removal tried again.

    A symlink or a file (a DEST.prev that was one, moved aside) is unlinked: os.walk follows
    a symlink given as its top, and the chmod below reached the directories it points to."""
    if os.path.islink(path) or not os.path.isdir(path):
        _remove(os.unlink, path)
        return
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return
    for top, dirs, _ in os.walk(path, onerror=lambda exc: None):
        for name in (top, *(os.path.join(top, d) for d in dirs)):
            if not os.path.islink(name):  # chmod follows links: never outside the tree
                with contextlib.suppress(OSError):
                    os.chmod(name, stat.S_IMODE(os.lstat(name).st_mode) | 0o700)
    _remove(shutil.rmtree, path)


def _remove(remove: Callable[[str], object], path: str) -> None:
    """``remove(path)``; what is already gone is fine, what stays is a warning."""
    try:
        remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def describe_os_error(exc: OSError, what: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {what}"
    return f"cannot write {what}: {exc.strerror or exc}"


# How much of a new file is written before its writeback is started (see _start_writeback).
WRITEBACK_BYTES = 8 * 1024 * 1024
_START_WRITEBACK: int | None = os.POSIX_FADV_DONTNEED if sys.platform == "linux" else None


class HashingWriter:
    """Writes to a binary file, counting and hashing (SHA-256) what is written, so that an
    archive's checksum costs no second read; an OSError becomes a DestinationError naming
    ``name``."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        self._file = file
        self._name = name
        self._hash = hashlib.sha256()
        self.size = 0
        self.may_stall = may_stall(file)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: Any) -> int:
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        try:
            written = self._file.write(data)
            if written is None or written < n:  # a raw stream (unbuffered stdout, a socket)
                self._write_rest(memoryview(data).cast("B"), written or 0)
        except OSError as exc:  # ENOSPC; EPIPE for a stream whose reader is gone
            raise DestinationError(describe_os_error(exc, self._name)) from exc
        except ValueError as exc:  # the stream was closed
            raise DestinationError(f"cannot write {self._name}: {exc}") from exc
        self._hash.update(data)
        self.size += n
        return n

    def _write_rest(self, data: memoryview, done: int) -> None:
        """Write ``data[done:]`` to a stream that took only ``done`` bytes, or None (a
        non-blocking one that was full): wait until it can take more, as a short write is
        no error."""
        stalled = 0
        while done < len(data):
            try:
                written = self._file.write(data[done:])
            except BlockingIOError as exc:  # a buffered writer over a full non-blocking stream
                written = exc.characters_written
            if written:
                done += written
                stalled = 0
                continue
            stalled += 1
            if written == 0 and stalled > 100:  # a stream that takes nothing, for good
                raise DestinationError(f"cannot write {self._name}: it takes no more bytes")
            _wait_writable(self._file)

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, self._name)) from exc
        except ValueError as exc:
            raise DestinationError(f"cannot write {self._name}: {exc}") from exc


def may_stall(stream: IO[bytes]) -> bool:
    """Whether a read or write of ``stream`` may wait indefinitely: a pipe's, a socket's or a
    device's does while the other end is alive but idle; a regular file's returns."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is both
        return True


def _wait_writable(stream: IO[bytes]) -> None:
    """Until ``stream`` can take bytes: select() on its descriptor, or a short sleep for a
    stream without one."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        time.sleep(0.001)
        return
    select.select([], [fd], [], 1.0)


class AtomicFile(HashingWriter):
    """A binary file that becomes ``path`` only when the with-block completes without error.

    ``supersedes`` names files that describe the old ``path`` (its sidecars): they are removed
    just before the rename, so a crash never leaves a new file beside an old sidecar.
    """

    def __init__(self, path: str, supersedes: tuple[str, ...] = ()) -> None:
        self.path = os.path.abspath(path)
        self._supersedes = supersedes
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise DestinationError(f"output directory {directory!r} does not exist")
        clean_stale(self.path)
        self.temp_path = sibling(self.path, TEMP_MARKER)
        self._written_back = 0  # bytes handed to the kernel's writeback so far
        try:
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, self.path)) from exc
        super().__init__(os.fdopen(fd, "wb", buffering=1024 * 1024), self.path)

    def write(self, data: Any) -> int:
        n = super().write(data)
        if self.size - self._written_back >= WRITEBACK_BYTES and _START_WRITEBACK is not None:
            self._start_writeback(_START_WRITEBACK)
        return n

    def _start_writeback(self, advice: int) -> None:
        """Start writing what is done to disk now, so that commit's fsync waits for the last
        few MiB only instead of the whole archive: it took ~38 ms for the 68 MB stdlib
        archive, while every core was idle. On Linux, POSIX_FADV_DONTNEED starts writeback of
        the dirty range (and drops pages that are already clean, which a new range has few
        of); Python has no sync_file_range."""
        self.flush()
        fd = self._file.fileno()
        with contextlib.suppress(OSError):  # only a hint: fsync still makes it durable
            os.posix_fadvise(fd, self._written_back, self.size - self._written_back, advice)
        self._written_back = self.size

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            for stale in self._supersedes:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            os.replace(self.temp_path, self.path)
        except OSError as exc:
            self.discard()
            raise DestinationError(describe_os_error(exc, self.path)) from exc

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # the data is being thrown away anyway
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)


@contextlib.contextmanager
def directory_locked(path: str) -> Iterator[None]:
    """Hold an exclusive lock on the directory ``path`` (waiting for it) for the block; where
    the file system has no locks, the block runs unlocked, as it did before there was one.

    Held while an archive and its sidecars are renamed into place, and while an extraction
    checks DEST and renames its tree in: two runs writing one output at once then end with
    one run's archive and that run's sidecars, never one's archive beside the other's
    ``.sha256``. flock, not a lock file: nothing is left behind by a killed run, and a
    directory can be locked on Linux and macOS alike."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # ENOLCK on some network file systems
            closing, fd = fd, -1  # forgotten first: see _create.read.LargeFile.close
            os.close(closing)
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock


def write_atomically(path: str, data: bytes) -> None:
    with AtomicFile(path) as f:
        f.write(data)
