"""Collector: walks the source tree in parallel and returns its entries in archive order.

One task scans one directory (os.scandir, lstat from the directory entry, excludes and the
name check applied while walking, names sorted). The assembly is depth-first (each directory,
then its children by name), so the order is deterministic; while it runs, the scans of the
next LOOKAHEAD directories it will reach run ahead on the workers. The look-ahead is bounded
so that finished scans waiting their turn cannot hold most of a big tree as objects at once.
The entries land in a compact EntryTable; walk() also hands each one out as soon as the assembly
reaches it, so that reading need not wait for the whole tree. The collection completes when
every reachable directory has been scanned.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import SourceError, UnsafeMemberError
from .._manifest import DIR, FILE, SYMLINK
from .._workers import Submit, start
from .entries import EntryTable
from .entries import SourceEntry as SourceEntry  # the writers' and diff's import path

if TYPE_CHECKING:
    import pathspec

# Directory scans started ahead of the assembly: enough to keep any pool busy, few enough that
# their results (one directory's entries each) stay small next to the table.
LOOKAHEAD = 32


@dataclass
class Collection:
    entries: EntryTable
    skipped: list[tuple[str, str]] = field(default_factory=list)


# One entry as EntryTable.add takes it: path, kind, size, mode, mtime, uid, gid, target.
_Row = tuple[str, str, int, int, int, int, int, "str | None"]
_Ancestors = frozenset[tuple[int, int]]
# A scan returns the directory's entries as (path, row, ancestors) and the paths it had to
# skip. ``ancestors`` is set for a directory to descend into; ``row`` is None for one whose
# name was refused (skipped, but its children are still reached and reported).
_Item = tuple[str, "_Row | None", "_Ancestors | None"]
_Scan = tuple[list[_Item], list[tuple[str, str]]]


class _Listing:
    """A scanned directory being assembled: its entries, the assembly's position in them, and
    the scans started ahead for its subdirectories."""

    __slots__ = ("ahead", "dirs", "jobs", "pos", "rows")

    def __init__(self, rows: list[_Item]) -> None:
        self.rows = rows
        self.pos = 0
        self.dirs = [i for i, (_, _, ancestors) in enumerate(rows) if ancestors is not None]
        self.ahead = 0  # index into dirs of the next subdirectory to start ahead
        self.jobs: dict[int, Future[_Scan]] = {}


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
        submit: Submit | None,
        name_check: Callable[[str], object] | None = None,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        """``name_check`` raises UnsafeMemberError for a name the archive must not hold;
        ``lookahead`` is how many directory scans may run ahead of the assembly."""
        self._root = os.path.realpath(root)
        # pathspec costs ~15 ms to import and ~5 us a match per entry, so plain names (the
        # defaults, .DS_Store and Thumbs.db) are matched as gitignore does, by an entry's own
        # name at any depth, with a set; pathspec only when a pattern needs it.
        self._names: frozenset[str] = frozenset()
        self._spec: pathspec.GitIgnoreSpec | None = None
        if all(_is_plain_name(p) for p in exclude_patterns):
            self._names = frozenset(exclude_patterns)
        else:
            import pathspec

            self._spec = pathspec.GitIgnoreSpec.from_lines(exclude_patterns)
        # Compared with each entry's path under the resolved root: cheap, and enough to keep
        # the archive being written (and its sidecars) out of itself.
        self._exclude_paths = {
            os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
            for p in exclude_paths
        }
        self._follow = follow_symlinks
        self._max_size = max_file_size
        self._skip_errors = skip_errors
        self._submit = submit
        self._check = name_check
        # Sequentially, a scan started ahead would only run early and wait, holding its result.
        self._lookahead = lookahead if submit is not None else 0
        self._outstanding = 0  # scans started and not yet taken by the assembly
        self.entries = EntryTable()
        self.skipped: list[tuple[str, str]] = []

    def collect(self) -> Collection:
        """The whole tree, for callers that need it complete (its total size, say) first."""
        for _ in self._rows():
            pass
        return Collection(self.entries, self.skipped)

    def walk(self) -> Iterator[SourceEntry]:
        """The entries in archive order, each as soon as the assembly reaches it, so that
        reading can start while the tree is still being scanned. They are also added to
        ``entries``, and refused paths to ``skipped``: both are complete when the walk is."""
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
        stack = [self._take(None, "", frozenset({(st.st_dev, st.st_ino)}))]
        self._start_ahead(stack)
        while stack:
            listing = stack[-1]
            if listing.pos == len(listing.rows):
                stack.pop()
                continue
            i = listing.pos
            listing.pos += 1
            path, row, ancestors = listing.rows[i]
            if row is not None:
                add(*row)
                yield row
            if ancestors is not None:
                stack.append(self._take(listing.jobs.pop(i, None), path, ancestors))
                self._start_ahead(stack)

    def _start(self, rel: str, ancestors: _Ancestors) -> Future[_Scan]:
        self._outstanding += 1
        return start(self._submit, self._scan, rel, ancestors)

    def _take(self, job: Future[_Scan] | None, rel: str, ancestors: _Ancestors) -> _Listing:
        """The scan of ``rel``, done here if it was not started ahead or is still queued
        (behind scans needed later, or other work on a shared pool): waiting for it would hold
        up the walk, and with it every stage after it."""
        if job is not None:
            self._outstanding -= 1
        if job is None or job.cancel():
            rows, skips = self._scan(rel, ancestors)
        else:
            rows, skips = job.result()
        self.skipped.extend(skips)
        return _Listing(rows)

    def _start_ahead(self, stack: list[_Listing]) -> None:
        """Start the scans the assembly will need next, in the order it will need them: the
        innermost directory's remaining subdirectories first, then its parent's, and so on."""
        for listing in reversed(stack):
            while self._outstanding < self._lookahead and listing.ahead < len(listing.dirs):
                i = listing.dirs[listing.ahead]
                listing.ahead += 1
                if i >= listing.pos:  # not reached yet
                    path, _, ancestors = listing.rows[i]
                    assert ancestors is not None
                    listing.jobs[i] = self._start(path, ancestors)
            if self._outstanding >= self._lookahead:
                return

    def _fail(self, path: str, reason: str, skips: list[tuple[str, str]]) -> None:
        if not self._skip_errors:
            raise SourceError(f"cannot archive {path!r}: {reason}", path)
        skips.append((path, reason))

    def _storable(self, path: str, skips: list[tuple[str, str]]) -> bool:
        if self._check is None:
            return True
        try:
            self._check(path)
        except UnsafeMemberError as exc:
            self._fail(path, exc.reason, skips)
            return False
        return True

    def _scan(self, rel: str, ancestors: _Ancestors) -> _Scan:
        directory = os.path.join(self._root, rel) if rel else self._root
        found: list[_Item] = []
        skips: list[tuple[str, str]] = []
        try:
            with os.scandir(directory) as it:
                dir_entries = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            self._fail(rel or ".", exc.strerror or str(exc), skips)
            return found, skips
        for d in dir_entries:
            path = f"{rel}/{d.name}" if rel else d.name
            try:
                st = d.stat(follow_symlinks=self._follow)
            except OSError as exc:
                self._fail(path, exc.strerror or str(exc), skips)
                continue
            mode = st.st_mode
            is_dir = stat.S_ISDIR(mode)
            if d.name in self._names or (
                self._spec is not None and self._spec.match_file(path + "/" if is_dir else path)
            ):
                continue
            if d.path in self._exclude_paths:
                continue
            size = 0
            target = below = None
            if is_dir:
                kind = DIR
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    self._fail(path, "symlink loop back to an enclosing directory", skips)
                    continue
                below = ancestors | {key}
            elif stat.S_ISLNK(mode):
                kind = SYMLINK
                try:
                    target = os.readlink(d.path)
                except OSError as exc:
                    self._fail(path, exc.strerror or str(exc), skips)
                    continue
            elif stat.S_ISREG(mode):
                kind, size = FILE, st.st_size
                if self._max_size is not None and size > self._max_size:
                    self._fail(path, f"{size} bytes is over max_file_size={self._max_size}", skips)
                    continue
            else:
                self._fail(path, "special file (device, fifo or socket) cannot be archived", skips)
                continue
            row: _Row | None = None
            if self._storable(path, skips):
                row = (path, kind, size, stat.S_IMODE(mode), int(st.st_mtime), st.st_uid,
                       st.st_gid, target)
            elif below is None:
                continue
            found.append((path, row, below))
        return found, skips


def _is_plain_name(pattern: str) -> bool:
    """A gitignore pattern that matches exactly the entries of that name: no glob, negation,
    escape, slash, comment or surrounding space."""
    return bool(pattern) and pattern == pattern.strip() and not pattern.startswith("#") and (
        not any(c in pattern for c in "*?[]!\\/")
    )
