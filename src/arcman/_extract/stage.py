"""Member sinks: where checked members go. StagingTree writes them, HashSink only hashes them.

StagingTree writes into a private staging directory that only this operation knows: regular
files through the worker pool (bounded by a byte budget), batches of tiny files through a
helper process (_child.py) once there are more than a few, each file hashed as it is written,
and told to its Writeback, which puts them on disk while the extraction goes on.
Directories are made in archive order on the caller's thread; links, directory modes and
directory mtimes are applied by finish(), after every file is written, so nothing is ever
written through a link, and every symlink is then resolved on disk and refused if it leaves
the tree (this catches chains of links that look harmless one at a time).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from .._atomic import describe_os_error
from .._child import LazyHelper
from .._errors import DestinationError, UnsafeMemberError
from .._stats import PhaseClock
from .._workers import ByteBudget, Submit
from .batch import Digest, FileBatches, Item, Reply
from .files import WRITE_FLAGS, finish_file, set_mtime, write_all, write_file
from .members import Data
from .safety import resolves_inside
from .sparse import is_hole
from .writeback import FILE_COST, Writeback

if TYPE_CHECKING:
    from .files import Mtime, WireItem

# What a file system says to a link or a mode it cannot hold (FAT: EPERM; FUSE: ENOSYS).
_UNSUPPORTED = {errno.EPERM, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


class MemberSink(Protocol):
    def add_dir(self, path: str, mode: int, mtime: Mtime) -> None: ...

    def add_file(self, path: str, data: Data, mode: int, mtime: Mtime) -> Digest: ...

    def add_large(self, path: str, chunks: Iterator[Data], mode: int, mtime: Mtime) -> bytes: ...

    def add_symlink(self, path: str, target: str, mtime: Mtime) -> None: ...

    def add_hardlink(self, path: str, target: str) -> None: ...

    def flush(self) -> None:
        """Hand every file added so far to the pool: their digests are awaited next."""

    def finish(self) -> None: ...


def _parent(path: str) -> str:
    """posixpath.dirname for the guard's normalized relative paths, at a fraction of its cost
    (it is called for every member)."""
    return path.rpartition("/")[0]


def safe_mode(mode: int, is_dir: bool) -> int:
    """As tarfile's data filter: no setuid/setgid/sticky, no group/other write; owner rw(x)."""
    mode &= 0o755
    return mode | 0o700 if is_dir else mode | 0o600


def current_umask() -> int | None:
    """The process's umask, read without changing it (os.umask can only set it, and setting
    it and back races with other threads creating files); None where Linux's
    /proc/self/status (4.7+) does not report it."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


class HashSink:
    """Hashes file contents on the pool and writes nothing: the verify and list path."""

    def __init__(self, submit: Submit | None, budget: int, clock: PhaseClock) -> None:
        self._batches = FileBatches(submit, ByteBudget(budget), self._hash, clock, "verification")
        self._clock = clock
        self._links: dict[str, str] = {}  # symlinks, judged together by finish()

    def _hash(self, path: str, data: Data, mode: int, mtime: Mtime) -> bytes:
        return hashlib.sha256(data).digest()  # timed by FileBatches, per batch

    def add_dir(self, path: str, mode: int, mtime: Mtime) -> None:
        pass

    def add_file(self, path: str, data: Data, mode: int, mtime: Mtime) -> Digest:
        return self._batches.add(path, data, mode, mtime)

    def flush(self) -> None:
        self._batches.flush()

    def add_large(self, path: str, chunks: Iterator[Data], mode: int, mtime: Mtime) -> bytes:
        digest = hashlib.sha256()
        for chunk in chunks:
            with self._clock.measure("verification"):
                digest.update(chunk)
        return digest.digest()

    def add_symlink(self, path: str, target: str, mtime: Mtime) -> None:
        self._links[path] = target

    def add_hardlink(self, path: str, target: str) -> None:
        pass

    def finish(self) -> None:
        """Refuse, as extraction would, a symlink that the archive's other links lead out."""
        for path, target in self._links.items():
            if not resolves_inside(self._links, path):
                raise UnsafeMemberError(path, f"symlink resolves outside ({target!r})")


class StagingTree:
    def __init__(
        self,
        root: str,
        submit: Submit | None,
        budget: int,
        clock: PhaseClock,
        *,
        preserve_permissions: bool,
        preserve_timestamps: bool,
        apply_modes: bool = True,
    ) -> None:
        """``apply_modes=False`` for a file system that keeps no Unix modes (FAT): no chmod
        at all, which it would refuse, and files and directories get its defaults."""
        self.root = root
        self._prefix = os.path.join(root, "")
        self._budget = ByteBudget(budget)
        self._offload = _Offload(self) if submit is not None else None
        self._batches = FileBatches(
            submit, self._budget, self._write, clock, "extraction", self._offload
        )
        self._clock = clock
        self._perms = preserve_permissions
        self._modes_kept = apply_modes
        self._times = preserve_timestamps
        self._umask = current_umask()
        self._dirs: dict[str, tuple[int, Mtime]] = {}
        self._made: set[str] = {""}
        self._symlinks: list[tuple[str, str, Mtime]] = []
        self._hardlinks: list[tuple[str, str]] = []
        # Last: nothing to close if the lines above fail. Early syncs are a thread of their
        # own, which sequential mode does not start.
        try:
            self.writeback = Writeback(root, early=submit is not None)
        except OSError as exc:  # out of file descriptors, say
            raise DestinationError(describe_os_error(exc, root)) from exc

    def _abs(self, path: str) -> str:
        # Paths are relative and normalized by the guard: a concatenation, not os.path.join
        # (~1 µs a member on a hot path).
        return self._prefix + path

    def _ensure_parent(self, path: str) -> None:
        parent = _parent(path)
        if parent in self._made:
            return
        self._guarded(parent, os.makedirs, self._abs(parent), 0o700, exist_ok=True)
        while parent and parent not in self._made:
            self._made.add(parent)
            parent = _parent(parent)

    def _guarded(
        self, what: str, fn: Callable[..., object], *args: object, **kwargs: object
    ) -> None:
        """Run ``fn``; an OSError becomes a DestinationError about ``what``: the member as the
        archive names it, not its path in the staging directory nor a link's target."""
        try:
            fn(*args, **kwargs)
        except OSError as exc:
            message = describe_os_error(exc, what)
            if exc.errno in _UNSUPPORTED:
                message += " (does this file system support it? FAT and exFAT have no links"
                message += " and no Unix modes)"
            raise DestinationError(message) from exc

    def drain(self) -> None:
        """Stop the writer process and wait for the pool's pending writes and an early sync,
        so that removing the tree cannot race them."""
        self._batches.discard()
        if self._offload is not None:
            self._offload.stop(at_once=True)
        self._budget.drain()
        self.writeback.close()

    def add_dir(self, path: str, mode: int, mtime: Mtime) -> None:
        self._ensure_parent(path)
        if path not in self._made:
            self._guarded(path, os.mkdir, self._abs(path), 0o700)
            self._made.add(path)
        self._dirs[path] = (mode, mtime)

    def _modes(self, mode: int) -> tuple[int, int | None]:
        """The mode to create a file with, and the mode it still needs after (None: none).

        A file is created with its final mode when the umask leaves that mode whole, which
        saves an fchmod (~25 us of kernel time a file); otherwise it gets the mode afterwards,
        so that, as always, the mode does not depend on the umask. Until the commit the staging
        tree's directories are 0o700, so no one else can reach the file either way."""
        final = safe_mode(mode, False) if self._perms else 0o644
        if not self._modes_kept or (self._umask is not None and not final & self._umask):
            return final, None
        return 0o600, final

    def _write(self, path: str, data: Data, mode: int, mtime: Mtime) -> bytes:
        """Write and hash one file (timed by FileBatches, per batch)."""
        try:
            digest = write_file(
                self._abs(path), data, *self._modes(mode), mtime if self._times else None
            )
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, path)) from exc
        self.writeback.wrote(len(data) + FILE_COST)
        return digest

    def add_file(self, path: str, data: Data, mode: int, mtime: Mtime) -> Digest:
        self._ensure_parent(path)
        return self._batches.add(path, data, mode, mtime)

    def flush(self) -> None:
        self._batches.flush()

    def add_large(self, path: str, chunks: Iterator[Data], mode: int, mtime: Mtime) -> bytes:
        self._ensure_parent(path)
        digest = hashlib.sha256()
        try:
            create_mode, mode_after = self._modes(mode)
            fd = os.open(self._abs(path), WRITE_FLAGS, create_mode)
            try:
                size, hole_at_end = 0, False
                for chunk in chunks:
                    with self._clock.measure("extraction"):
                        digest.update(chunk)
                        size += len(chunk)
                        hole_at_end = is_hole(chunk)
                        if hole_at_end:  # a sparse member's: left unwritten, as GNU tar does
                            os.lseek(fd, len(chunk), os.SEEK_CUR)
                        else:
                            write_all(fd, chunk)
                            self.writeback.wrote(len(chunk))
                if hole_at_end:
                    os.ftruncate(fd, size)
                finish_file(fd, mode_after, mtime if self._times else None)
            finally:
                os.close(fd)
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, path)) from exc
        self.writeback.wrote(FILE_COST)
        return digest.digest()

    def add_symlink(self, path: str, target: str, mtime: Mtime) -> None:
        self._ensure_parent(path)
        self._symlinks.append((path, target, mtime))

    def add_hardlink(self, path: str, target: str) -> None:
        self._ensure_parent(path)
        self._hardlinks.append((path, target))

    def finish(self) -> None:
        """Make the deferred links, check where symlinks resolve, then set directory metadata.
        Every file's digest has been awaited by now."""
        if self._offload is not None:
            self._offload.stop(at_once=False)
        with self._clock.measure("extraction"):
            for path, target in self._hardlinks:
                self._guarded(
                    f"hard link {path} (to {target})",
                    os.link, self._abs(target), self._abs(path), follow_symlinks=False,
                )
            for path, target, _ in self._symlinks:
                self._guarded(f"symlink {path} (to {target})", os.symlink, target, self._abs(path))
            real_root = os.path.realpath(self.root)
            links = {path: target for path, target, _ in self._symlinks}
            for path, target, mtime in self._symlinks:
                # Judged on the archive's links (which also bounds a chain's length) and on
                # the disk, where the links now are.
                inside = resolves_inside(links, path)
                resolved = os.path.realpath(self._abs(path))
                if not inside or os.path.commonpath([real_root, resolved]) != real_root:
                    raise UnsafeMemberError(path, f"symlink resolves outside ({target!r})")
                if self._times:
                    self._guarded(
                        f"mtime of {path}", set_mtime, self._abs(path), mtime,
                        follow_symlinks=False,
                    )
            # Deepest first, so setting a child's mtime does not disturb its parent's.
            for path in sorted(self._made - {""}, key=lambda p: p.count("/"), reverse=True):
                full = self._abs(path)
                listed = self._dirs.get(path)
                mode = safe_mode(listed[0], True) if listed and self._perms else 0o755
                if self._modes_kept:
                    self._guarded(f"mode {mode:04o} of {path}", os.chmod, full, mode)
                if listed and self._times:
                    self._guarded(f"mtime of {path}", set_mtime, full, listed[1])


class _Offload:
    """StagingTree's Remote: its batches of tiny files, written by a helper process."""

    def __init__(self, tree: StagingTree) -> None:
        self._tree = tree
        self._helper = LazyHelper("write", tree.root)

    def submit(self, items: list[Item], reply: Reply) -> bool:
        helper = self._helper.for_batch(len(items))
        if helper is None:
            return False
        tree = self._tree
        times = tree._times
        wire: list[WireItem] = [
            (path, data, *tree._modes(mode), mtime if times else None)
            for path, data, mode, mtime in items
        ]

        def written(
            answer: tuple[list[bytes], tuple[int, str] | None] | None,
            ended: OSError | None, seconds: float,
        ) -> None:
            digests, failure = answer or ([], None)
            done = len(digests)
            tree.writeback.wrote(sum(len(item[1]) for item in items[:done]) + FILE_COST * done)
            error = ended or (OSError(*failure) if failure is not None else None)
            if error is None:
                reply(digests, None, seconds)
                return
            refusal = DestinationError(describe_os_error(error, items[done][0]))
            refusal.__cause__ = error
            reply(digests, refusal, seconds)

        helper.submit(wire, written)
        return True

    def stop(self, *, at_once: bool) -> None:
        self._helper.stop(at_once=at_once)
