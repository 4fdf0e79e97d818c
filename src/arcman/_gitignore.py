"""The patterns ``--gitignore`` adds: git's own ``.git``, then the ``.gitignore`` files that git
reads for the tree. Those are the tree's own, each relative to its directory, and, when the
tree is a directory inside a repository (``arcman create repo/services/api``), those of the
directories above it up to the repository's root, whose patterns are rewritten to apply from
the tree (``/services/api/build`` in the root's file is ``/build``). Not read: the
repository's ``.git/info/exclude`` and the user's ``core.excludesFile``, which are one
machine's, not the tree's."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence

from ._errors import SourceError
from ._excludes import Excludes, read_pattern_file

log = logging.getLogger("arcman")

GIT_OWN = (".git", "--gitignore (git's own directory)")


def gitignore_patterns(root: str, overrides: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(pattern, origin) for ``root``: GIT_OWN, the files above the tree (shallowest first),
    then every ``.gitignore`` in it (parents before children, so deeper ones win). As git,
    the walk never enters a directory that is excluded (by the patterns found so far, then by
    ``overrides``, the patterns that will come after them): a ``.gitignore`` in there could
    not bring anything back, and an ignored node_modules can hold a hundred thousand files.
    As git (2.32 on), a ``.gitignore`` that is a symbolic link is not followed; a warning
    says so."""
    inherited = _inherited_patterns(root)
    found = [GIT_OWN, *inherited]
    # A file's patterns only match below its directory (see _excludes._reroot), so a
    # directory is decided by its ancestors' files alone, the deepest first (their patterns
    # come last), after the overrides: the same decision as all the patterns in one
    # Excludes, which would be compiled again for every file found.
    overriding = Excludes(overrides)
    outside = Excludes([pattern for pattern, _ in found])
    by_directory: dict[str, Excludes] = {}  # a .gitignore's directory -> its patterns
    for directory, dirs, files in os.walk(root):
        rel = os.path.relpath(directory, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/")
        if ".gitignore" in files:
            patterns = _read(os.path.join(directory, ".gitignore"), prefix)
            found.extend(patterns)
            by_directory[prefix] = Excludes([pattern for pattern, _ in patterns])
        chain = [overriding, *(by_directory[a] for a in _ancestors(prefix) if a in by_directory),
                 outside]
        dirs[:] = [name for name in sorted(dirs)
                   if not _excluded_by(chain, f"{prefix}/{name}" if prefix else name)]
    return found


def warn_of_tracked(root: str, archived: Iterable[str]) -> None:
    """Warn of the files git tracks under ``root`` that its ``.gitignore`` rules match and
    that are not among ``archived``: git keeps such a file (its rules do not apply to what it
    tracks), ``--gitignore`` reads the rules, not git's index, and leaves it out. git itself
    says which (``ls-files --cached --ignored``): where it is not installed, or ``root`` is in
    no repository it will read, nothing is said."""
    tracked = _tracked_but_ignored(root)
    if not tracked:
        return
    left = set(tracked)
    for name in archived:
        left.discard(name)
    if left:
        names = sorted(left)
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        log.warning(
            "--gitignore left out %d file%s that git tracks, which git keeps (its ignore rules "
            "do not apply to tracked files): %s", len(names), "" if len(names) == 1 else "s",
            shown,
        )


def _tracked_but_ignored(root: str) -> list[str]:
    """What ``git ls-files --cached --ignored`` lists for ``root`` with the .gitignore files
    as its rules (those arcman reads), as paths relative to ``root``; none without git or a
    repository."""
    git = shutil.which("git")
    if git is None:
        return []
    try:
        listed = subprocess.run(
            [git, "-C", root, "ls-files", "-z", "--cached", "--ignored",
             "--exclude-per-directory=.gitignore"],
            capture_output=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listed.returncode != 0:  # not a repository, or one git refuses (safe.directory)
        return []
    return [os.fsdecode(path) for path in listed.stdout.split(b"\0") if path]


def _read(path: str, prefix: str) -> list[tuple[str, str]]:
    """A .gitignore's patterns, re-rooted under ``prefix``; none where there is no such file,
    and none, with a warning, from a symbolic link or from what is not a regular file (git
    waits for ever on a FIFO named .gitignore)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SourceError(f"cannot read pattern file {path!r}: {exc.strerror}", path) from exc
    if stat.S_ISLNK(mode):
        log.warning("not reading %s: a symbolic link (git does not follow one)", path)
        return []
    if not stat.S_ISREG(mode):
        log.warning("not reading %s: not a regular file", path)
        return []
    return read_pattern_file(path, prefix)


def _inherited_patterns(root: str) -> list[tuple[str, str]]:
    """The patterns of the .gitignore files above ``root`` in its repository (the nearest
    directory above with a ``.git``; none outside one), shallowest first, as they apply
    from ``root``."""
    tree = os.path.realpath(root)
    repository = tree
    while not os.path.lexists(os.path.join(repository, ".git")):
        parent = os.path.dirname(repository)
        if parent == repository:
            return []
        repository = parent
    components = [] if repository == tree else os.path.relpath(tree, repository).split(os.sep)
    found = []
    for depth in range(len(components)):
        path = os.path.join(repository, *components[:depth], ".gitignore")
        for pattern, origin in _read(path, ""):
            for rewritten in from_below(pattern, components[depth:]):
                found.append((rewritten, origin if rewritten == pattern
                              else f"{origin}, written there as {pattern!r}"))
    return found


def from_below(pattern: str, components: Sequence[str]) -> list[str]:
    """``pattern``, of a .gitignore in a directory that ``components`` lead down from to the
    tree, as patterns that apply from the tree. One without a slash but at its end matches at
    any depth, so as it is. Another is anchored to its directory: its leading segments must
    match ``components`` ("**" standing for any number of them) and are taken off; where
    they cannot, or where the pattern matches the tree itself or a directory above it, it
    gives none (the tree is archived, as asked)."""
    negation = "!" if pattern.startswith("!") else ""
    body = pattern[len(negation) :]
    slash = "/" if body.endswith("/") else ""
    core = body[: len(body) - len(slash)]
    if "/" not in core:
        return [pattern]
    rewritten = []
    for rest in _remainders(core.lstrip("/").split("/"), list(components)):
        text = f"{negation}/{'/'.join(rest)}{slash}"
        if text not in rewritten:
            rewritten.append(text)
    return rewritten


def _remainders(segments: list[str], components: list[str]) -> list[list[str]]:
    """What is left of ``segments`` once they have matched all of ``components``, in every
    way they can ("**" takes none of them, or one more); none where they cannot."""
    if not components:
        return [segments] if segments else []
    if not segments:
        return []
    head = segments[0]
    if len(head) > 1 and head.strip("*") == "":  # git reads any run of stars alone as "**"
        return [*_remainders(segments[1:], components), *_remainders(segments, components[1:])]
    # Ended by "/": a directory's name, and a space at the end of the segment is no
    # trailing space of a line, which git would trim.
    if head and Excludes([f"/{head}/"]).decide(components[0], True) is not None:
        return _remainders(segments[1:], components[1:])
    return []


def _excluded_by(chain: list[Excludes], directory: str) -> bool:
    """Whether the first of ``chain`` to decide on ``directory`` excludes it."""
    for excludes in chain:
        decision = excludes.decide(directory, True)
        if decision is not None:
            return decision[1]
    return False


def _ancestors(prefix: str) -> list[str]:
    """``prefix`` and the directories above it, the deepest first ("" is the root)."""
    parts = prefix.split("/") if prefix else []
    return ["/".join(parts[:n]) for n in range(len(parts), -1, -1)]
