"""Collector: walks the source tree and returns its entries in archive order.

One scan reads one directory (its sorted names listed through a descriptor, each entry's
lstat taken relative to it, excludes and the name check applied while walking). The walk
is depth-first (each directory, then its children by name), so the order is deterministic.
The entries land in a compact EntryTable; walk() also hands each one out as soon as it is
reached, so that reading, hashing and compression run while the tree is still being walked.
The collection completes when every reachable directory has been scanned. A file reached
again under another name (a hard link) can be handed out as a link to its first name.

The scans run on the thread that consumes the walk. Scanning ahead on a thread of their own
was measured slower: each lstat gives up the GIL, and the two threads then wait for each
other after every system call (20,000 tiny files: create 0.83 -> 0.64 s without it; the
stdlib tree, warm or with the page cache dropped: no difference).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .._errors import SourceError, UnsafeMemberError
from .._excludes import Excludes
from .._extract.safety import MAX_LINK_CHAIN, normalize_name, resolves_inside, symlink_problem
from .._manifest import DIR, FILE, HARDLINK, MANIFEST_NAME, SYMLINK
from .entries import EntryTable
from .entries import SourceEntry as SourceEntry  # the writers' and diff's import path
from .files import change_stamp, link_stamp


@dataclass
class Collection:
    entries: EntryTable
    skipped: list[tuple[str, str]] = field(default_factory=list)


# One entry as EntryTable.add takes it: path, kind, size, mode, mtime, uid, gid, target, stamp.
_Row = tuple[str, str, int, int, int, int, int, "str | None", int]
_Identity = tuple[int, int]  # (st_dev, st_ino)
_Ancestors = frozenset[_Identity]
# A scan returns the directory's entries as (path, row, below). ``below`` is set for a
# directory to descend into: its ancestors, itself included (the last is its identity, as
# its parent's listing saw it); ``row`` is None for one whose name was refused (skipped, but
# its children are still reached and reported).
_Item = tuple[str, "_Row | None", "tuple[_Ancestors, _Identity] | None"]

# A directory is listed, and its entries looked at, through a descriptor of the directory
# that was checked to be the one its parent listed: a directory swapped for a symlink while
# the tree is walked (RENAME_EXCHANGE) is not followed out of the tree. The files themselves
# are opened by path, and refused when they are not the file collected (files.check_unchanged).
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)

# Why a symlink extraction would refuse is not archived, and what to do instead.
_REFUSED = ": extraction refuses it (--follow-symlinks archives what it points to)"


class Collector:
    def __init__(
        self,
        root: str,
        *,
        exclude_patterns: list[str],
        exclude_paths: set[str],
        follow_symlinks: bool,
        max_file_size: int | None,
        skip_errors: bool,
        name_check: Callable[[str], object] | None = None,
        hard_links: bool = False,
    ) -> None:
        """``name_check`` raises UnsafeMemberError for a name the archive must not hold; with
        it, symlinks that extraction refuses are refused too. Without it (diff), the tree is
        taken as it is. With ``hard_links``, a file reached again under another name (the
        same inode, as GNU tar tells it) is a HARDLINK entry whose target is the first name
        collected, so its content is stored once; without, each name is a file of its own."""
        self._root = os.path.realpath(root)
        # pathspec costs ~15 ms to import and Excludes a regular expression search per pattern
        # and entry, so plain names (the defaults, .DS_Store and Thumbs.db) are matched as
        # gitignore does, by an entry's own name at any depth, with a set; Excludes only when
        # a pattern needs it.
        self._names: frozenset[str] = frozenset()
        self._excludes: Excludes | None = None
        if all(_is_plain_name(p) for p in exclude_patterns):
            self._names = frozenset(exclude_patterns)
        else:
            self._excludes = Excludes(exclude_patterns)
        # The archive being written, its temporary and its sidecars are kept out of the archive
        # by path under the resolved root, and when reached under another path (through a
        # followed symlink) by identity, which the stat each entry gets anyway gives: a set
        # lookup. An identity match is confirmed by resolving the path, so that a hard link
        # to the old archive elsewhere in the tree is still archived.
        self._exclude_paths = {
            os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
            for p in exclude_paths
        }
        self._exclude_ids = _identities(exclude_paths)
        self._follow = follow_symlinks
        self._max_size = max_file_size
        self._skip_errors = skip_errors
        self._check = name_check
        self.entries = EntryTable()
        self.skipped: list[tuple[str, str]] = []
        self._links: dict[str, str] = {}  # path -> target, when symlinks are judged
        # A file with more than one name: its identity (st_dev << 64 | st_ino) -> the table
        # row of the first name collected. Ints, not a (dev, ino) tuple and a str: a tree of
        # a million such files (a pnpm store, a backup made with links) costs ~110 MB, not ~240.
        self._first_rows: dict[int, int] | None = {} if hard_links else None

    def collect(self) -> Collection:
        """The whole tree, for callers that need it complete (its total size, say) first."""
        for _ in self._rows():
            pass
        return Collection(self.entries, self.skipped)

    def walk(self) -> Iterator[SourceEntry]:
        """The entries in archive order, each as soon as the walk reaches it, so that reading
        can start while the tree is still being scanned. They are also added to ``entries``,
        and refused paths to ``skipped``: both are complete when the walk is."""
        for row in self._rows():
            yield SourceEntry(*row)

    def _rows(self) -> Iterator[_Row]:
        try:
            st = os.stat(self._root)
        except OSError as exc:
            raise SourceError(
                f"cannot read source {self._root!r}: {exc.strerror}", self._root
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(f"source {self._root!r} is not a directory", self._root)
        add = self.entries.add
        # The scanned directories being walked, innermost last.
        root = (st.st_dev, st.st_ino)
        stack = [self._scan("", frozenset({root}), root)]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            path, row, below = item
            if row is not None:
                add(*row)
                yield row
            if below is not None:
                stack.append(self._scan(path, *below))
        self._judge_link_chains()

    def _judge_link_chains(self) -> None:
        """Refuse a symlink that leads out of the tree through the tree's other symlinks
        (``a -> .`` with ``b -> a/..``, each target harmless alone), as verify and extraction
        refuse it (resolves_inside). Known only once the walk is over, when walk() may have
        handed the link on to be written: an error then even with skip_errors, and the
        archive is never put in place."""
        for path, target in self._links.items():
            try:
                inside = resolves_inside(self._links, path)
            except UnsafeMemberError:  # a chain too long
                raise SourceError(
                    f"cannot archive {path!r}: a chain of more than {MAX_LINK_CHAIN} symlinks, "
                    f"which no lookup resolves{_REFUSED}", path,
                ) from None
            if not inside:
                raise SourceError(
                    f"cannot archive {path!r}: symlink to {target!r} resolves outside the tree "
                    f"through the tree's other symlinks{_REFUSED}", path,
                )

    def _fail(self, path: str, reason: str) -> None:
        if not self._skip_errors:
            raise SourceError(f"cannot archive {path!r}: {reason}", path)
        self.skipped.append((path, reason))

    def _storable(self, path: str) -> bool:
        if self._check is None:
            return True
        try:
            self._check(path)
        except UnsafeMemberError as exc:
            self._fail(path, exc.reason)
            return False
        return True

    def _scan(self, rel: str, ancestors: _Ancestors, identity: _Identity) -> Iterator[_Item]:
        """The directory's entries in name order, each looked at when the walk reaches it:
        what a directory holds while it is walked is its sorted names, not an entry with its
        stat for each (~1.2 KiB an entry: a directory of 200,000 files took 250 MB). Its
        descriptor is open meanwhile, but not while a subdirectory's tree is walked: held for
        each level, a tree deeper than the open-file limit failed ("Too many open files";
        macOS allows 256 by default). It is opened again after the subtree (~5 us), and the
        directory must still be the one its parent listed."""
        directory = os.path.join(self._root, rel) if rel else self._root
        fd = self._open(rel, directory, identity)
        if fd < 0:
            return
        try:
            try:
                names = sorted(os.listdir(fd))
            except OSError as exc:
                self._fail(rel or ".", exc.strerror or str(exc))
                return
            for name in names:
                path = f"{rel}/{name}" if rel else name
                full = f"{directory}/{name}"  # os.path.join: ~0.2 us more an entry
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=self._follow)
                except OSError as exc:
                    self._fail(path, exc.strerror or str(exc))
                    continue
                mode = st.st_mode
                is_dir = stat.S_ISDIR(mode)
                # An excluded directory is not entered, as in git: nothing below it comes back.
                if name in self._names or (
                    self._excludes is not None and self._excludes.excluded(path, is_dir)
                ):
                    continue
                if full in self._exclude_paths or (
                    (st.st_dev, st.st_ino) in self._exclude_ids
                    and os.path.realpath(full) in self._exclude_paths
                ):
                    continue
                size = 0
                target = below = None
                if is_dir:
                    kind = DIR
                    key = (st.st_dev, st.st_ino)
                    if key in ancestors:
                        self._fail(path, "symlink loop back to an enclosing directory")
                        continue
                    below = ancestors | {key}, key
                elif stat.S_ISLNK(mode):
                    kind = SYMLINK
                    try:
                        target = os.readlink(name, dir_fd=fd)
                    except OSError as exc:
                        self._fail(path, exc.strerror or str(exc))
                        continue
                    if self._check is not None:
                        problem = symlink_problem(path, target)
                        if problem is not None:
                            self._fail(path, f"{problem}{_REFUSED}")
                            continue
                        self._links[path] = target
                elif stat.S_ISREG(mode):
                    kind, size = FILE, st.st_size
                    if self._max_size is not None and size > self._max_size:
                        self._fail(path, f"{size} bytes is over max_file_size={self._max_size}")
                        continue
                    if self._first_rows is not None and st.st_nlink > 1:
                        first = self._first_rows.get(st.st_dev << 64 | st.st_ino)
                        if first is not None:
                            kind, size, target = HARDLINK, 0, self.entries.names[first]
                else:
                    self._fail(path, "special file (device, fifo or socket) cannot be archived")
                    continue
                row: _Row | None = None
                if self._storable(path):
                    row = (path, kind, size, stat.S_IMODE(mode), int(st.st_mtime), st.st_uid,
                           st.st_gid, target,
                           link_stamp(st) if kind == HARDLINK else change_stamp(st))
                    if kind == FILE and self._first_rows is not None and st.st_nlink > 1:
                        # _rows adds the row to the table as soon as this scan hands it out,
                        # before the scan resumes: its index is the table's length now.
                        self._first_rows[st.st_dev << 64 | st.st_ino] = len(self.entries)
                if below is None:
                    if row is not None:
                        yield path, row, None
                    continue
                closing, fd = fd, -1  # forgotten first: see LargeFile.close
                os.close(closing)
                yield path, row, below  # its subtree is walked now
                fd = self._open(rel, directory, identity)
                if fd < 0:
                    return
        finally:
            if fd >= 0:
                os.close(fd)

    def _open(self, rel: str, directory: str, identity: _Identity) -> int:
        """A descriptor of the directory if it is the one its parent listed (``identity``),
        else -1 with the failure recorded (raised unless skipping)."""
        flags = _DIRECTORY_FLAGS | (0 if self._follow or not rel else os.O_NOFOLLOW)
        try:
            fd = os.open(directory, flags)
        except OSError as exc:
            self._fail(rel or ".", exc.strerror or str(exc))
            return -1
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            self._fail(rel or ".", exc.strerror or str(exc))
            return -1
        if (st.st_dev, st.st_ino) != identity:
            os.close(fd)
            self._fail(rel or ".", "changed while the archive was being made")
            return -1
        return fd


def check_name(path: str, *, zip_rules: bool) -> None:
    """Raise UnsafeMemberError for a collected path that would spoil the archive, rather than
    store it as a trap: a name extraction refuses (normalize_name: "C:x", a backslash in a
    zip); the manifest's name at the root, or below a directory of that name (the writers add
    the manifest last; readers take the first member so named for it and refuse what follows);
    in a zip, a name that is not UTF-8 (zip has no raw-bytes names that readers decode)."""
    normalize_name(path, zip_rules=zip_rules)  # a collected path comes back unchanged or raises
    if path.startswith(MANIFEST_NAME) and path.partition("/")[0] == MANIFEST_NAME:
        raise UnsafeMemberError(
            path, "the name of the manifest arcman adds to every archive (a copy left by"
            " unpacking one with another tool? remove or exclude it)"
        )
    if zip_rules and not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeMemberError(
                path, "the name is not valid UTF-8, which zip requires (a tar format keeps it)"
            ) from None


def _identities(paths: set[str]) -> frozenset[tuple[int, int]]:
    """(st_dev, st_ino) of each of ``paths`` that exists."""
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def _is_plain_name(pattern: str) -> bool:
    """A gitignore pattern that matches exactly the entries of that name: no glob, negation,
    escape, slash, comment or surrounding space."""
    return bool(pattern) and pattern == pattern.strip() and not pattern.startswith("#") and (
        not any(c in pattern for c in "*?[]!\\/")
    )
