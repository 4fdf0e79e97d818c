"""Collector: walks the source tree in parallel and returns its entries in archive order.

One task scans one directory (os.scandir, lstat from the directory entry, excludes applied
while walking, names sorted). A directory's subdirectories are submitted as soon as the
directory is reached in the depth-first assembly, so siblings scan concurrently while the
result keeps a deterministic order: each directory, then its children by name.
The collection completes when every reachable directory has been scanned.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import SourceError
from .._manifest import DIR, FILE, SYMLINK
from .._workers import Submit, start

if TYPE_CHECKING:
    import pathspec


@dataclass(slots=True)
class SourceEntry:
    """One member-to-be. ``path`` is its archive name (POSIX, relative to the source root)."""

    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    uid: int
    gid: int
    target: str | None = None


@dataclass
class Collection:
    entries: list[SourceEntry]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries if e.kind == FILE)


# A scan returns the directory's entries (each with the scan job of its children, if it is a
# directory to descend into) and the paths it had to skip, with why.
_Scan = tuple[list[tuple[SourceEntry, "frozenset[tuple[int, int]] | None"]], list[tuple[str, str]]]


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
    ) -> None:
        self._root = os.path.realpath(root)
        # pathspec costs ~20 ms to import and a match per entry: only when there are patterns.
        self._spec: pathspec.GitIgnoreSpec | None = None
        if exclude_patterns:
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
        # Modes and owners repeat across a tree: sharing one int object per value keeps a
        # million-entry list compact (each fresh int from stat() costs 28 bytes). Not mtimes:
        # they can all differ, and the table would then cost more than it saves.
        self._shared: dict[int, int] = {}

    def collect(self) -> Collection:
        try:
            st = os.stat(self._root)
        except OSError as exc:
            raise SourceError(
                f"cannot read source {self._root!r}: {exc.strerror}", self._root
            ) from exc
        if not stat.S_ISDIR(st.st_mode):
            raise SourceError(f"source {self._root!r} is not a directory", self._root)
        entries: list[SourceEntry] = []
        skipped: list[tuple[str, str]] = []
        stack: list[Iterator[tuple[SourceEntry, Future[_Scan] | None]]] = [
            self._expand(self._start("", frozenset({(st.st_dev, st.st_ino)})), skipped)
        ]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
                continue
            entry, children = item
            entries.append(entry)
            if children is not None:
                stack.append(self._expand(children, skipped))
        return Collection(entries, skipped)

    def _start(self, rel: str, ancestors: frozenset[tuple[int, int]]) -> Future[_Scan]:
        return start(self._submit, self._scan, rel, ancestors)

    def _expand(
        self, job: Future[_Scan], skipped: list[tuple[str, str]]
    ) -> Iterator[tuple[SourceEntry, Future[_Scan] | None]]:
        """Take a finished scan and start its subdirectories' scans at once."""
        entries, skips = job.result()
        skipped.extend(skips)
        started = [
            (entry, self._start(entry.path, anc) if anc is not None else None)
            for entry, anc in entries
        ]
        return iter(started)

    def _fail(self, path: str, reason: str, skips: list[tuple[str, str]]) -> None:
        if not self._skip_errors:
            raise SourceError(f"cannot archive {path!r}: {reason}", path)
        skips.append((path, reason))

    def _scan(self, rel: str, ancestors: frozenset[tuple[int, int]]) -> _Scan:
        directory = os.path.join(self._root, rel) if rel else self._root
        found: list[tuple[SourceEntry, frozenset[tuple[int, int]] | None]] = []
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
            if self._spec is not None and self._spec.match_file(path + "/" if is_dir else path):
                continue
            if d.path in self._exclude_paths:
                continue
            share = self._shared.setdefault
            perms = stat.S_IMODE(mode)
            entry = SourceEntry(
                path, FILE, 0, share(perms, perms), int(st.st_mtime),
                share(st.st_uid, st.st_uid), share(st.st_gid, st.st_gid),
            )
            if is_dir:
                entry.kind = DIR
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    self._fail(path, "symlink loop back to an enclosing directory", skips)
                    continue
                found.append((entry, ancestors | {key}))
            elif stat.S_ISLNK(mode):
                entry.kind = SYMLINK
                try:
                    entry.target = os.readlink(d.path)
                except OSError as exc:
                    self._fail(path, exc.strerror or str(exc), skips)
                    continue
                found.append((entry, None))
            elif stat.S_ISREG(mode):
                entry.size = st.st_size
                if self._max_size is not None and st.st_size > self._max_size:
                    self._fail(
                        path, f"{st.st_size} bytes is over max_file_size={self._max_size}", skips
                    )
                    continue
                found.append((entry, None))
            else:
                self._fail(path, "special file (device, fifo or socket) cannot be archived", skips)
        return found, skips
