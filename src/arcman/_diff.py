"""``arcman diff``: compare an archive's manifest with a directory tree.

Content is compared by SHA-256 (only for files whose size matches, so a changed size costs no
hashing); mtimes are ignored because extraction and copies do not keep them reliably. Names and
modes are taken as ``extract`` would apply them, so that a tree just extracted from the archive
compares equal to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._config import ArchiveConfig
from ._create.collect import Collector, SourceEntry
from ._extract.safety import normalize_name
from ._extract.stage import safe_mode
from ._manifest import DIR, FILE, HARDLINK, SYMLINK, reproducible_mode
from ._metadata import ArchiveEntry


@dataclass
class TreeDiff:
    added: list[str] = field(default_factory=list)  # in the tree, not in the archive
    removed: list[str] = field(default_factory=list)  # in the archive, not in the tree
    changed: list[str] = field(default_factory=list)  # type, size, content or link target
    mode_only: list[str] = field(default_factory=list)  # same content, other permissions

    @property
    def same(self) -> bool:
        return not (self.added or self.removed or self.changed or self.mode_only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "mode_only": self.mode_only,
        }

    def lines(self) -> list[str]:
        marks = (("+", self.added), ("-", self.removed), ("M", self.changed),
                 ("m", self.mode_only))
        return sorted((f"{mark} {path}" for mark, paths in marks for path in paths),
                      key=lambda line: line[2:])


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _differs(old: ArchiveEntry, entry: SourceEntry, root: str) -> bool:
    if old.type != entry.kind or old.size != entry.size or old.target != entry.target:
        return True
    return entry.kind == FILE and old.sha256 != _sha256(os.path.join(root, entry.path))


def _mode_differs(old: ArchiveEntry, entry: SourceEntry, reproducible: bool) -> bool:
    """Whether extracting ``old`` would change the tree's mode: extraction drops setuid,
    setgid, sticky and group/other write (safe_mode). With ``reproducible`` both sides are
    reduced as ``create --reproducible`` stores modes (only a file's executable bit is left),
    so a source tree compares equal to a reproducible archive made from it."""
    extracted = safe_mode(old.mode, old.type == DIR)
    if reproducible:
        return reproducible_mode(old.type, extracted) != reproducible_mode(entry.kind, entry.mode)
    return extracted != entry.mode


def _normalized(name: str) -> str:
    """The path extraction gives ``name`` ("" for the root); an UnsafeMemberError where
    extraction would refuse it."""
    return normalize_name(name, zip_rules=False) or ""


def _as_extracted(entries: Sequence[ArchiveEntry]) -> dict[str, ArchiveEntry]:
    """The archive's entries by their paths, as extraction leaves them: a hard link is one
    more name of its target's file, and a directory the archive does not list but needs for
    its members is made with mode 0o755."""
    archived: dict[str, ArchiveEntry] = {}
    for e in entries:
        name = _normalized(e.name)  # as listed, unless extraction would refuse it
        if e.type == HARDLINK:
            target = archived.get(_normalized(e.target or ""))
            if target is not None and target.type == FILE:
                e = dataclasses.replace(target, name=e.name)
        archived[name] = e
    for name in list(archived):
        parent = name.rpartition("/")[0]
        while parent and parent not in archived:
            archived[parent] = ArchiveEntry(parent, DIR, 0, 0o755, 0)
            parent = parent.rpartition("/")[0]
    return archived


def diff_tree(entries: Sequence[ArchiveEntry], directory: str, config: ArchiveConfig) -> TreeDiff:
    """Compare ``entries`` (from ``list_archive``, with the ``strip_components`` of the
    extraction to compare with) with ``directory``, walked like ``create``.

    Hard links and unlisted parent directories are taken as extraction makes them, so that
    foreign archives compare with the tree they extract to."""
    tree = Collector(
        directory,
        exclude_patterns=config.exclude_patterns,
        exclude_paths=set(),
        follow_symlinks=False,
        max_file_size=None,
        skip_errors=False,
    ).collect().entries
    root = os.path.realpath(directory)
    archived = _as_extracted(entries)
    result = TreeDiff()
    for entry in tree:
        old = archived.pop(entry.path, None)
        if old is None:
            result.added.append(entry.path)
        elif _differs(old, entry, root):
            result.changed.append(entry.path)
        elif entry.kind != SYMLINK and _mode_differs(old, entry, config.reproducible):
            result.mode_only.append(entry.path)
    result.removed.extend(archived)
    return result
