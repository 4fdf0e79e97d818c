"""Exclude patterns from files (``--exclude-from``, the tree's ``.gitignore`` files) and the
``create --dry-run`` plan that says what goes in and which pattern left each path out."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ._config import ArchiveConfig
from ._errors import SourceError


def read_pattern_file(path: str, prefix: str = "") -> list[tuple[str, str]]:
    """Patterns of a gitignore-style file as (pattern, "file:line"), re-rooted under ``prefix``.

    A pattern in ``sub/.gitignore`` applies relative to ``sub``, so it becomes ``sub/...``
    (anchored) or ``sub/**/...`` (unanchored) for the one spec matched from the source root.
    """
    try:
        # utf-8-sig: git skips a byte order mark at the start of the file.
        with open(path, encoding="utf-8-sig", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise SourceError(f"cannot read pattern file {path!r}: {exc.strerror}", path) from exc
    patterns = []
    for number, line in enumerate(lines, 1):
        stripped = _trim(line)
        if not stripped or stripped.startswith("#"):
            continue
        patterns.append((_reroot(stripped, prefix), f"{path}:{number}"))
    return patterns


def _trim(line: str) -> str:
    """``line`` without its trailing spaces but one escaped with a backslash, as git reads it.

    By hand because pathspec's rule differs (it keeps a line ending in a backslash and a space
    whole, and strips any other run, leaving the invalid ``foo\\`` of ``"foo\\  "``), and the
    line must be trimmed before pathspec sees it, to find blank lines and to re-root it.
    """
    body = line.rstrip(" ")
    if body != line and (len(body) - len(body.rstrip("\\"))) % 2:
        body += " "  # an odd run of backslashes escapes the first space
    return body


_GLOB_CHARS = re.compile(r"[\\*?\[\]]")


def _reroot(pattern: str, prefix: str) -> str:
    if not prefix:
        return pattern
    negate = "!" if pattern.startswith("!") else ""
    body = pattern[len(negate):]
    # git: a slash at the start or middle anchors the pattern to the .gitignore's directory.
    anchored = "/" in body.rstrip("/")
    body = body.lstrip("/")
    prefix = _GLOB_CHARS.sub(r"\\\g<0>", prefix)  # the directory's name is literal
    if prefix[0] in "!#":
        prefix = "\\" + prefix  # else a negation or a comment
    return f"{negate}{prefix}/{body}" if anchored else f"{negate}{prefix}/**/{body}"


def gitignore_patterns(root: str) -> list[tuple[str, str]]:
    """Every ``.gitignore`` under ``root`` (parents before children, so deeper ones win)."""
    found: list[tuple[str, str]] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        if ".gitignore" in files:
            rel = os.path.relpath(directory, root)
            prefix = "" if rel == "." else rel.replace(os.sep, "/")
            found.extend(read_pattern_file(os.path.join(directory, ".gitignore"), prefix))
    return found


@dataclass
class Plan:
    """What ``create`` would archive, and each path it would leave out with the reason."""

    included: list[tuple[str, str, int]] = field(default_factory=list)  # (path, kind, size)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, _, size in self.included)


def plan(source: str, config: ArchiveConfig, origins: list[str]) -> Plan:
    """Run the real collector, then name the pattern that excluded each top-most left-out path."""
    import pathspec

    from ._create.collect import Collector

    collection = Collector(
        source,
        exclude_patterns=config.exclude_patterns,
        exclude_paths=set(),
        follow_symlinks=config.follow_symlinks,
        max_file_size=config.max_file_size,
        skip_errors=True,
    ).collect()
    result = Plan([(e.path, e.kind, e.size) for e in collection.entries])
    kept = {e.path for e in collection.entries} | {""}
    skipped = dict(collection.skipped)
    spec = pathspec.GitIgnoreSpec.from_lines(config.exclude_patterns)
    root = os.path.realpath(source)
    for directory, dirs, files in os.walk(root, followlinks=config.follow_symlinks):
        dirs.sort()  # report in archive order
        rel = os.path.relpath(directory, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel
        if rel not in kept:
            dirs[:] = []  # reported at its top-most excluded directory
            continue
        for name in sorted([*dirs, *files]):
            path = f"{rel}/{name}" if rel else name
            if path in kept:
                continue
            if path in skipped:
                result.excluded.append((path, skipped[path]))
                continue
            is_dir = name in dirs
            check = spec.check_file(path + "/" if is_dir else path)
            if check.index is not None:
                pattern = config.exclude_patterns[check.index]
                result.excluded.append((path, f"pattern {pattern!r} from {origins[check.index]}"))
    return result
