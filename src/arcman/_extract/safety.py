"""MemberGuard: judges every member before a byte of it is written.

Stricter than tarfile's ``data`` filter (PEP 706), which only sanitizes some of these cases:
a member is refused, never rewritten, when its name is absolute, has a ``..`` component
(between slashes or backslashes), a NUL, a drive letter or (in zips) a backslash; when it is
a device, fifo or other special file; when it would be written through a symlink or over an
earlier member; when a link points outside the destination; or when it breaks an extraction
limit. The guard remembers the kinds of the
paths it has let through, which is what it needs to judge later members: exactly for
directories and links (few), as hashes in a NameSet for regular files (a million of them cost
16 MB, not 100), so a hash collision can only refuse a member, never admit one.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .._config import ExtractionLimits
from .._errors import LimitExceededError, UnsafeMemberError
from .._manifest import DIR, FILE, HARDLINK, SYMLINK
from .nameset import NameSet
from .ustar import SPECIAL

if TYPE_CHECKING:  # not at run time: creation uses normalize_name without tarfile and zipfile
    from .members import Member

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095
RATIO_GRACE = 64 * 1024 * 1024
# The longest chain of symlinks judged: Linux follows 40 links in one lookup (macOS 32), so a
# longer one only ever fails with ELOOP. It is refused, by every Python alike: 3.11's realpath
# gave up at the recursion limit (~1,000 links), 3.13's walks any length.
MAX_LINK_CHAIN = 40


# A name that every rule below accepts unchanged: short ASCII, components with no separator,
# NUL or colon that are not "." or "..". Most names are, and the match costs a third of the
# rules (~0.5 us against 1.6 on the stdlib tree's names), for every member created or extracted.
_PLAIN_COMPONENT = r"(?!\.\.?(?:/|\Z))[^/\\\x00:]+"
_PLAIN_NAME = re.compile(rf"{_PLAIN_COMPONENT}(?:/{_PLAIN_COMPONENT})*")


def normalize_name(raw: str, *, zip_rules: bool) -> str | None:
    """The member's path relative to the destination, or None for the root itself."""
    if is_plain_name(raw):
        return raw
    return normalize_by_rules(raw, zip_rules=zip_rules)


def is_plain_name(raw: str) -> bool:
    """Whether normalize_by_rules would return ``raw`` itself, under zip rules or not."""
    return len(raw) <= MAX_NAME_BYTES and raw.isascii() and _PLAIN_NAME.fullmatch(raw) is not None


def normalize_by_rules(raw: str, *, zip_rules: bool) -> str | None:
    """normalize_name, rule by rule."""
    name = raw
    if "\x00" in name:
        raise UnsafeMemberError(raw, "NUL byte in name")
    if zip_rules and "\\" in name:
        raise UnsafeMemberError(raw, "backslash in a zip member name")
    # Rooted on Windows too (UNC "\\server", "\\x", drive "C:"), where archives are also opened.
    if name.startswith(("/", "\\")) or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeMemberError(raw, "absolute path")
    # A backslash is an ordinary character on POSIX, but a separator wherever the tree may be
    # copied next: '..' between either separator is refused.
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeMemberError(raw, "'..' path component")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        return None
    path = "/".join(parts)
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafeMemberError(raw, f"path longer than {MAX_PATH_BYTES} bytes")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in parts):
        raise UnsafeMemberError(raw, f"name component longer than {MAX_NAME_BYTES} bytes")
    return path


class MemberGuard:
    def __init__(
        self, limits: ExtractionLimits, *, case_insensitive: bool, zip_rules: bool,
        strip_components: int = 0,
    ):
        self._limits = limits
        self._fold = case_insensitive
        self._zip = zip_rules
        self.strip_components = strip_components
        self._kinds: dict[str, str] = {}  # every path but regular files'
        self._files = NameSet()
        self._folded: dict[str, str] = {}  # folded name -> path, for all but regular files
        self._folded_files = NameSet()
        self.members = 0
        self.total_size = 0

    def check(self, member: Member) -> str | None:
        """Return the safe relative path to write ``member`` to (None: the root), or raise."""
        path = normalize_name(member.name, zip_rules=self._zip)
        if member.kind == SPECIAL:
            raise UnsafeMemberError(member.name, f"special file refused ({member.detail})")
        self.count(member)
        if path is None:
            if member.kind != DIR:
                raise UnsafeMemberError(member.name, "a non-directory in place of the root")
            return None
        self._check_parents(member.name, path)
        previous = self._kind(path)
        if previous is not None and not (previous == DIR and member.kind == DIR):
            raise UnsafeMemberError(member.name, f"duplicate member (replaces a {previous})")
        self._check_fold(member.name, path, member.kind)
        if member.kind == SYMLINK:
            self._check_symlink(member, path)
        elif member.kind == HARDLINK:
            self._check_hardlink(member)
        if member.kind == FILE:
            self._files.add(path)
        else:
            self._kinds[path] = member.kind
        return path

    def strip(self, member: Member) -> str | None:
        """For ``strip_components`` (tar's --strip-components): give ``member`` its path in
        the destination as its name (see ``strip_name``; the root, "", for a directory at or
        above that depth: not extracted), a hardlink its target's, and return its path in the
        archive, which the manifest lists. Every check of ``check`` then judges the path in
        the destination: two members that strip to one path are duplicates, and a symlink's
        target is resolved from where it lands."""
        count = self.strip_components
        path = normalize_name(member.name, zip_rules=self._zip)  # refuses what is unsafe
        member.name = strip_name(member.name, member.kind, count) or ""
        if member.kind == HARDLINK:
            target = member.target or ""
            normalize_name(target, zip_rules=self._zip)  # ``../x/f`` must not strip to ``x/f``
            member.target = strip_name(target, HARDLINK, count)
        return path

    def _kind(self, path: str) -> str | None:
        """The kind of the member already at ``path`` (a hash collision may say FILE wrongly)."""
        kind = self._kinds.get(path)
        if kind is None and path in self._files:
            return FILE
        return kind

    def count(self, member: Member, *, manifest: bool = False) -> None:
        """Count ``member`` against the limits: check() does for every member it judges; the
        ``manifest``, which is read but not extracted, is counted by itself."""
        limits = self._limits
        self.members += 1
        if limits.max_members is not None and self.members > limits.max_members:
            raise LimitExceededError(member.name, f"more than {limits.max_members} members" + (
                " (the manifest arcman adds counts as one)" if manifest else ""
            ))
        if member.kind == FILE:
            if limits.max_member_size is not None and member.size > limits.max_member_size:
                raise LimitExceededError(
                    member.name, f"{member.size} bytes is over the {limits.max_member_size} limit"
                )
            self.total_size += member.size
            if limits.max_total_size is not None and self.total_size > limits.max_total_size:
                raise LimitExceededError(
                    member.name, f"archive expands past the {limits.max_total_size} byte limit"
                )

    def check_ratio(self, produced: int, consumed: int) -> None:
        limit = self._limits.max_compression_ratio
        if limit is None or produced < RATIO_GRACE or consumed <= 0:
            return
        if produced / consumed > limit:
            raise LimitExceededError(
                "(archive)", f"compression ratio above {limit:g}:1 (a decompression bomb?)"
            )

    def _check_parents(self, raw: str, path: str) -> None:
        parent = posixpath.dirname(path)
        pending: list[str] = []
        while parent:
            kind = self._kind(parent)
            if kind == DIR:
                break
            if kind is not None:
                raise UnsafeMemberError(raw, f"would be written through a {kind} ({parent!r})")
            self._check_fold(raw, parent, DIR)
            pending.append(parent)
            parent = posixpath.dirname(parent)
        for p in pending:
            self._kinds[p] = DIR

    def _check_fold(self, raw: str, path: str, kind: str) -> None:
        """Refuse ``path`` if an earlier, different path has the same case-folded name. A
        regular file never comes twice (the duplicate check refused it), so a hit among the
        files' folded names is always another path."""
        if not self._fold:
            return
        key = unicodedata.normalize("NFC", path).casefold()
        if key in self._folded_files:
            raise UnsafeMemberError(
                raw, "same name as an earlier file on this case-insensitive file system"
            )
        other = self._folded.get(key, path) if kind == FILE else self._folded.setdefault(key, path)
        if other != path:
            raise UnsafeMemberError(
                raw, f"same name as {other!r} on this case-insensitive file system"
            )
        if kind == FILE:
            self._folded_files.add(key)

    def _check_symlink(self, member: Member, path: str) -> None:
        problem = symlink_problem(path, member.target or "")
        if problem is not None:
            raise UnsafeMemberError(member.name, problem)

    def _check_hardlink(self, member: Member) -> None:
        target = normalize_name(member.target or "", zip_rules=self._zip)
        # A hash collision could wrongly take the target for an earlier file: the link is then
        # made (before any symlink, see StagingTree.finish) to whatever regular file of the
        # staging tree has that path, or fails; it can never leave the tree.
        if target is None or self._kind(target) != FILE:
            raise UnsafeMemberError(
                member.name, f"hardlink to {member.target!r}, which is not an earlier file"
            )
        member.target = target


def symlink_problem(path: str, target: str) -> str | None:
    """Why a symlink at ``path`` to ``target`` is refused (it could lead out of the tree it
    lands in), or None. Create asks too: such a link is not archived as a trap."""
    if not target:
        return "symlink with an empty target"
    if "\x00" in target:
        return "NUL byte in symlink target"
    if target.startswith("/"):
        return f"symlink to an absolute path ({target!r})"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink points outside ({target!r})"
    return None


def strip_name(name: str, kind: str, count: int) -> str | None:
    """``name`` without its first ``count`` components, counted as GNU tar and bsdtar count
    them (empty ones skipped, ``.`` counted: ``./app/x`` strips to ``app/x``, so a script moved
    from tar gets the same tree); None for a directory at or above that depth. Any other member
    there would be lost, as tar loses it without a word: UnsafeMemberError."""
    parts = [p for p in name.split("/") if p]
    if len(parts) > count:
        return "/".join(parts[count:])
    if kind != DIR:
        raise UnsafeMemberError(
            name, f"above the depth that strip_components={count} removes: it would be lost"
        )
    return None


def resolves_inside(links: Mapping[str, str], path: str) -> bool:
    """Whether the symlink ``path`` resolves inside the root once all of ``links`` (the
    archive's symlinks, path -> target) exist: os.path.realpath's walk (3.11, not strict), on
    the tree the archive describes instead of the disk. verify judges chains with it that
    extraction refuses on disk (StagingTree.finish), such as ``a -> .`` with ``b -> a/..``,
    whose targets each look harmless. A chain of more than MAX_LINK_CHAIN links is refused."""
    try:
        resolved, _ = _walk(links, "", path, {}, 0)
    except RecursionError:  # _walk's, past MAX_LINK_CHAIN
        raise UnsafeMemberError(path, "chain of symlinks too long to resolve") from None
    if resolved is None:
        return False
    normalized = posixpath.normpath(resolved) if resolved else "."
    return normalized != ".." and not normalized.startswith("../")


def _walk(
    links: Mapping[str, str], path: str, rest: str, seen: dict[str, str | None], depth: int
) -> tuple[str | None, bool]:
    """posixpath._joinrealpath over ``links``: None once the walk leaves the root. ``depth``:
    how many links are being resolved, one within the other, to get here."""
    if depth > MAX_LINK_CHAIN:
        raise RecursionError(f"a chain of more than {MAX_LINK_CHAIN} symlinks")
    while rest:
        name, _, rest = rest.partition("/")
        if not name or name == ".":
            continue
        if name == "..":
            if not path:
                return None, True
            path = path.rpartition("/")[0]
            continue
        newpath = f"{path}/{name}" if path else name
        target = links.get(newpath)
        if target is None:
            path = newpath
            continue
        if newpath in seen:
            cached = seen[newpath]
            if cached is not None:
                path = cached
                continue
            return posixpath.join(newpath, rest), False  # a loop: left unresolved, as realpath
        seen[newpath] = None
        resolved, ok = _walk(links, path, target, seen, depth + 1)
        if resolved is None:
            return None, True
        if not ok:
            return posixpath.join(resolved, rest), False
        seen[newpath] = resolved
        path = resolved
    return path, True
