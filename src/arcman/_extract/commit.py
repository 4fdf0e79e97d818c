"""Commit: move a verified staging tree into place, atomically where the platform allows.

A missing or empty destination is replaced by a single rename. An existing tree is swapped
with the staging tree by renameat2(RENAME_EXCHANGE) on Linux or renamex_np(RENAME_SWAP) on
macOS, so at every instant the destination holds either the whole old tree or the whole new
one; the old tree is removed only after the swap. Where no exchange call exists (other
systems, or file systems that refuse it), the fallback renames the old tree aside and the new
one in: a crash between those two renames leaves DEST missing and the old tree at a clearly
named ``.DEST.arcman-old-*`` path beside it, which the next run moves back (clean_stale).
Keeping the replaced tree as DEST.prev renames the new tree to a -next- name beside DEST
(which records its inode), exchanges it with DEST, and renames the old tree from there over
DEST.prev: killed between any two steps, the next run finds names that say which tree is
which and restores the trees from before the commit or those from after it, never putting an
undeployed tree at DEST.prev or deleting a deployed one; a failure at any step puts every
tree back. Before any rename the new tree is written to disk, so that a power cut after the
commit cannot leave it with empty files while the old tree is gone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
from collections.abc import Iterator

from .._atomic import (
    NEXT_MARKER,
    OLD_MARKER,
    PREV_MARKER,
    STAGING_MARKER,
    check_name_length,
    clean_stale,
    describe_os_error,
    directory_locked,
    remove_tree,
    rename_over,
    sibling,
)
from .._errors import DestinationError
from . import syscalls
from .writeback import Writeback

_RENAME_EXCHANGE = 2
_RENAME_SWAP = 2
_AT_FDCWD = -100

log = logging.getLogger("arcman")


def check_destination(dest: str, replace: bool, keep_previous: bool = False) -> None:
    """Fail early (before any work) when the commit could not succeed, or would remove or
    move away a file system mounted in a tree it replaces (see ``mounts_inside``)."""
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise DestinationError(f"parent directory {parent!r} does not exist")
    if keep_previous:
        check_name_length(dest, PREV_SUFFIX)
    if os.path.lexists(dest):
        if os.path.islink(dest):
            # The commit renames over DEST: it would replace the link, not fill its target.
            raise DestinationError(
                f"destination {dest!r} is a symlink (to {os.readlink(dest)!r}): give the "
                "directory it points to, or remove the link"
            )
        if not os.path.isdir(dest):
            raise DestinationError(f"destination {dest!r} exists and is not a directory")
        if os.path.ismount(dest):
            # The tree is staged beside DEST, on the parent's file system: renaming it onto a
            # mount point fails (EBUSY, EXDEV), but only after the whole extraction.
            raise DestinationError(
                f"destination {dest!r} is a mount point: arcman stages the new tree beside it "
                "and renames it into place, which cannot cross file systems; extract into a "
                "directory inside it"
            )
        try:
            empty = not os.listdir(dest)
        except OSError as exc:  # unreadable (EACCES): an internal error otherwise
            raise DestinationError(describe_os_error(exc, dest)) from exc
        if not replace and not empty:
            raise DestinationError(
                f"destination {dest!r} is not empty (pass replace=True / --replace to swap it)"
            )
        if not empty:
            _refuse_mounts(dest, "replacing it would move it away with the old tree")
    if keep_previous and os.path.isdir(previous := previous_path(dest)):
        _refuse_mounts(previous, "keeping the replaced tree there would delete it")


def _refuse_mounts(tree: str, why: str) -> None:
    mounts = mounts_inside(tree)
    if mounts:
        more = f" (and {len(mounts) - 1} more)" if len(mounts) > 1 else ""
        raise DestinationError(
            f"a file system is mounted at {mounts[0]!r}{more} in {tree!r}: {why} (and removing "
            "that tree would empty it); unmount it, or deploy to a directory without mounts"
        )


def mounts_inside(tree: str) -> list[str]:
    """The mount points below ``tree`` (not ``tree`` itself), sorted. A removal of the tree
    (shutil.rmtree) would go into them and delete what they hold: a Pi's data partition
    mounted in the deployed tree, say. Linux lists them in /proc/self/mountinfo, bind mounts
    of the same file system included; elsewhere a directory on another device is one."""
    root = os.path.realpath(tree)
    prefix = root.rstrip("/") + "/"
    try:
        with open(_MOUNTINFO, "rb") as table:
            # Field 5 is the mount point, with space, tab, newline and backslash as octal.
            points = [_unescape(line.split(b" ")[4]) for line in table]
    except (OSError, IndexError):
        return _other_devices(root)
    return sorted(point for point in points if point.startswith(prefix))


_MOUNTINFO = "/proc/self/mountinfo"


def _unescape(field: bytes) -> str:
    return os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field))


def _other_devices(root: str) -> list[str]:
    """The directories below ``root`` on another device than it: its mount points, where no
    mount table can be read (macOS, BSD; a bind mount of the same file system goes unseen)."""
    device = os.lstat(root).st_dev
    found = []
    for top, dirs, _ in os.walk(root, onerror=lambda exc: None):
        for name in list(dirs):
            path = os.path.join(top, name)
            with contextlib.suppress(OSError):
                if os.lstat(path).st_dev != device:
                    found.append(path)
                    dirs.remove(name)
    return sorted(found)


def make_staging(dest: str) -> str:
    clean_stale(dest)
    clean_stale(previous_path(dest))  # an older .prev that a killed commit had moved aside
    staging = sibling(dest, STAGING_MARKER)
    try:
        os.mkdir(staging, 0o700)
    except OSError as exc:  # named by DEST: the staging directory is ours, not the user's
        # ... but it is made in DEST's parent, which a writable DEST does not imply
        # (/opt/app owned by the deploying user, /opt by root): say where it was refused.
        raise DestinationError(
            f"{describe_os_error(exc, dest)} (the new tree is staged beside it, in "
            f"{os.path.dirname(dest)!r}, which must be writable too)"
        ) from exc
    return staging


def ensure_space(staging: str, needed: tuple[int, str] | None) -> None:
    """Refuse up front when the archive's known expanded size (and where it was read) cannot
    fit beside the old tree."""
    if needed is None:
        return
    try:
        st = os.statvfs(staging)
    except OSError:
        return  # no statvfs (Windows) or an exotic file system: ENOSPC is still caught
    free = st.f_bavail * st.f_frsize
    size, origin = needed
    if size > free:
        raise DestinationError(
            f"not enough space to extract beside {os.path.dirname(staging)!r}: "
            f"{size} bytes needed (as {origin} says), {free} free"
        )


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths; False when the platform or file system cannot."""
    # Hand-written: Python's os module binds neither renameat2 (Linux 3.15+, glibc 2.28+)
    # nor renamex_np (macOS 10.12+).
    if sys.platform.startswith("linux"):
        libc = syscalls.libc()
        renameat2 = getattr(libc, "renameat2", None)
        if renameat2 is None:
            return False
        result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif sys.platform == "darwin":
        libc = syscalls.libc()
        renamex_np = getattr(libc, "renamex_np", None)
        if renamex_np is None:
            return False
        result = renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    else:
        return False
    if result == 0:
        return True
    err = syscalls.last_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


PREV_SUFFIX = ".prev"


def previous_path(dest: str) -> str:
    return dest.rstrip(os.sep) + PREV_SUFFIX


def _swap(staging: str, dest: str, marker: str = OLD_MARKER) -> tuple[str, bool]:
    """Put the new tree at ``dest``; return where the old tree is now, and whether they were
    exchanged atomically. A failure leaves both where they were. Without an exchange call the
    old tree is moved aside under a ``marker`` name, which says what clean_stale does with it
    after a crash: OLD_MARKER's is put back at a missing ``dest`` or deleted, PREV_MARKER's
    is kept (at ``dest`` or ``dest``.prev)."""
    if _exchange(staging, dest):
        return staging, True
    old = sibling(dest, marker)
    os.rename(dest, old)
    try:
        os.rename(staging, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    return old, False


def _unswap(staging: str, dest: str, old: str, exchanged: bool) -> None:
    """Undo _swap: the old tree back at ``dest``, the new one back at ``staging``."""
    if exchanged:
        if not _exchange(staging, dest):
            raise OSError(errno.ENOTSUP, "cannot exchange the trees back", dest)
        return
    os.rename(dest, staging)
    try:
        os.rename(old, dest)
    except BaseException:
        os.rename(staging, dest)  # never leave DEST missing: the new tree goes back there
        raise


class _Stranded(Exception):
    """Undoing a failed commit failed too: ``staging`` may now hold the old tree."""


def _swap_keeping(new: str, dest: str, prev: str) -> str | None:
    """Put the tree at ``new`` at ``dest``, and ``dest``'s tree at ``prev`` (for a rollback,
    ``new`` is ``prev``: the two are exchanged). Return the older tree moved aside from
    ``prev``, for the caller to delete. A failure puts both trees back; if that fails too,
    _Stranded says where the old tree is."""
    # PREV_MARKER: killed after the old tree left DEST without an exchange call, the next run
    # puts it back at DEST or on at ``prev`` (clean_stale); under OLD_MARKER it would be
    # deleted (the kept deployment, or for a rollback the one rolled back from).
    old, exchanged = _swap(new, dest, PREV_MARKER)
    if old == prev:
        return None
    try:
        return rename_over(old, prev)
    except BaseException as exc:
        try:
            _unswap(new, dest, old, exchanged)
        except OSError as undo:
            raise _Stranded(
                f"cannot keep {dest!r}'s previous tree as {prev!r} ({exc}) nor put it back "
                f"({undo.strerror}): it is at {old!r}"
            ) from exc
        raise


def _replace(staging: str, dest: str, prev: str | None) -> str | None:
    """Swap the new tree in at ``dest``; with ``prev``, the old tree becomes ``prev``.

    Return what is left to delete (the old tree, or the older ``prev`` moved aside). With
    ``prev``, the new tree waits under a -next- name, which records its inode, to be swapped
    with ``dest``; the old tree goes on to ``prev`` from there (from a -prev- name without an
    exchange call). A crash (SIGKILL, power loss) between two steps leaves names from which
    the next run restores either the trees from before the commit or those from after it
    (clean_stale): ``prev`` never gets a tree that was not deployed. Any failure, Ctrl-C
    included, puts every tree back where it was, the new one at ``staging``."""
    if prev is None:
        return _swap(staging, dest)[0]
    waiting = sibling(dest, NEXT_MARKER, inode=os.lstat(staging).st_ino)
    os.rename(staging, waiting)
    try:
        return _swap_keeping(waiting, dest, prev)
    except _Stranded:
        raise
    except BaseException:
        # Left there, the next run removes it: its inode says it is the new tree.
        with contextlib.suppress(OSError):
            os.rename(waiting, staging)
        raise


def _fsync_directory(path: str) -> None:
    """Make the renames in directory ``path`` durable (best effort: not every system lets a
    directory be opened or fsynced)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _into_existing(staging: str, dest: str, keep_previous: bool) -> str | None:
    """Put the new tree at an existing ``dest``; return the tree left to delete, if any."""
    if not keep_previous or not os.listdir(dest):
        try:
            os.rename(staging, dest)  # succeeds only over an empty directory
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    return _replace(staging, dest, previous_path(dest) if keep_previous else None)


def commit(
    staging: str, dest: str, replace: bool, keep_previous: bool = False, *,
    apply_mode: bool = True, writeback: Writeback | None = None,
) -> None:
    """Put ``staging`` at ``dest`` with ``dest``'s mode (0o755 for a new one; none where
    ``apply_mode`` is false: a file system without modes); with ``keep_previous`` a replaced
    tree becomes DEST.prev. The new tree is on disk before it is renamed into place, and the
    renames before the replaced tree is deleted: by ``writeback``, which has been writing
    the tree out while it was extracted, if given. A power cut after the commit must not
    leave the new tree with empty files (ext4 writes a new file's data later than a rename:
    delayed allocation) while the replaced tree is already deleted. One syncfs of the tree's
    file system, not an fsync a file: 20,000 fsyncs are 20,000 journal commits.

    It owns ``staging`` from the call on: if it fails, Ctrl-C included, DEST and DEST.prev are
    as they were and the new tree is removed."""
    left = None
    try:
        if apply_mode:
            os.chmod(staging, os.stat(dest).st_mode & 0o7777 if os.path.isdir(dest) else 0o755)
        if writeback is None:
            writeback = Writeback(staging, early=False)
        writeback.finish()
        # Locked from the check to the rename: another extraction into DEST, committed in
        # between, would be replaced without --replace.
        with directory_locked(os.path.dirname(dest)):
            if not os.path.lexists(dest):
                os.rename(staging, dest)
            else:
                check_destination(dest, replace, keep_previous)
                left = _into_existing(staging, dest, keep_previous)
    except _Stranded as exc:
        raise DestinationError(str(exc)) from exc.__cause__
    except BaseException as exc:
        if writeback is not None:
            writeback.close()
        remove_tree(staging)
        if isinstance(exc, OSError):
            raise DestinationError(describe_os_error(exc, dest)) from exc
        raise
    with _after_commit("interrupted after %s was committed", dest):
        _fsync_directory(os.path.dirname(dest))
    if left is not None:
        with _after_commit(
            "interrupted while removing %s, the tree %s replaced; the next run removes what "
            "is left", left, dest,
        ):
            remove_tree(left)


@contextlib.contextmanager
def _after_commit(message: str, *args: object) -> Iterator[None]:
    """Cleanup once the new tree is in place: an interruption (Ctrl-C, SIGTERM) is logged with
    ``message``, not raised, which would report the deploy as failed and DEST as it was. What
    is left of an old tree keeps its temporary name, which the next run removes."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, SystemExit | GeneratorExit):
            raise
        log.warning(message, *args)


def rollback(dest: str) -> None:
    """Swap DEST and DEST.prev (atomically where renameat2 exists); running it again undoes it.
    A failure at any step, Ctrl-C included, leaves both as they were."""
    prev = previous_path(dest)
    # Not in the middle of an extraction's commit (see commit), which would then discard
    # the tree this swap had just put at DEST.prev.
    with directory_locked(os.path.dirname(dest)):
        for path in (dest, prev):
            if not os.path.isdir(path) or os.path.islink(path):
                raise DestinationError(f"cannot roll back: {path!r} is not a directory")
        try:
            _swap_keeping(prev, dest, prev)
            _fsync_directory(os.path.dirname(dest))
        except _Stranded as exc:
            raise DestinationError(str(exc)) from exc.__cause__
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, dest)) from exc
