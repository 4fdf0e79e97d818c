"""Exclude patterns from files (``--exclude-from``, ``.gitignore``: see _gitignore.py), git's
decision on each path (Excludes) and the ``create --dry-run`` plan that says what goes in and
which pattern left each path out."""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._config import ArchiveConfig
from ._errors import ConfigError, SourceError


def read_pattern_file(path: str, prefix: str = "") -> list[tuple[str, str]]:
    """Patterns of a gitignore-style file as (pattern, "file:line"), re-rooted under ``prefix``.

    A pattern in ``sub/.gitignore`` applies relative to ``sub``, so it becomes ``sub/...``
    (anchored) or ``sub/**/...`` (unanchored) for the one spec matched from the source root.
    """
    try:
        # utf-8-sig: git skips a byte order mark at the start of the file. Lines as git reads
        # them: ended by "\n" only, less one "\r" before it (splitlines() also broke them at
        # a lone "\r", a form feed or U+2028, which a name can hold).
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            lines = [line.removesuffix("\r") for line in f.read().split("\n")]
    except OSError as exc:
        raise SourceError(f"cannot read pattern file {path!r}: {exc.strerror}", path) from exc
    patterns = []
    for number, line in enumerate(lines, 1):
        stripped = _trim(line)
        if not stripped or stripped.startswith("#"):
            continue
        origin = f"{path}:{number}"
        # Named here, by its file and line, not re-rooted. Only a bracket or a backslash can
        # make a pattern fail to compile: checking every line compiled each twice (~100 us a
        # line; Excludes still names any other failure, re-rooted).
        reason = invalid_pattern(stripped) if "[" in stripped or "\\" in stripped else None
        if reason is not None:
            raise ConfigError(f"{origin}: pattern {stripped!r} is not valid: {reason}")
        patterns.append((_reroot(stripped, prefix), origin))
    return patterns


def invalid_pattern(pattern: str) -> str | None:
    """Why ``pattern`` cannot be compiled as Excludes compiles it, or None if it can."""
    import pathspec

    try:
        text = _for_pathspec(pattern)[1]
    except ValueError as exc:  # see _brackets
        return str(exc)
    try:
        if text not in ("", "!"):  # "/" and "!/" match nothing (see Excludes)
            with _quiet_sets():
                pathspec.GitIgnoreSpec.from_lines([text])
    except re.error as exc:
        return exc.msg  # without a position in pathspec's expression
    except ValueError as exc:  # pathspec's GitIgnorePatternError
        if (len(text) - len(text.rstrip("\\"))) % 2:  # its message would quote ``text``
            return "it ends in a backslash that escapes nothing"
        return str(exc)
    return None


@contextmanager
def _quiet_sets() -> Iterator[None]:
    """re's FutureWarnings off: it warns of sets that a later Python may read otherwise
    ("[[a]", "[a--]"); today's reads them as git does, and the warning would only reach the
    user's terminal as a line of Python's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _for_pathspec(pattern: str) -> tuple[bool, str]:
    """(directories only?, the pattern as pathspec is given it): trimmed as git trims a line,
    as bytes (_bytewise), without its trailing slash, with its brackets rewritten (see
    _brackets), a segment of three stars or more written as two and its trailing blanks
    kept."""
    text = _bytewise(_trim(pattern))
    dirs_only = text.endswith("/")
    return dirs_only, _blanks_kept(_star_runs(_brackets(text[:-1] if dirs_only else text)))


def _bytewise(text: str) -> str:
    """``text`` (a pattern or a path) with each of its bytes as one character (UTF-8 read as
    Latin-1): git's wildmatch works on bytes, so "?" and "[!a]" match one byte, not the two
    of "é", and matching the two sides thus matches as git does."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape").decode("latin-1")


def _blanks_kept(text: str) -> str:
    """``text`` with its trailing whitespace written as brackets ("a " as "a[ ]"): pathspec
    strips a pattern's trailing whitespace, but what git leaves of it is literal (git trims
    only a line's unescaped trailing spaces): a tab, an escaped space or tab, or the spaces
    before a directory pattern's slash ("a /" is for a directory named "a ")."""
    head = text.rstrip()
    if head == text or _ends_in_open_bracket(text):  # "a[\t": no match, in git as in pathspec
        return text
    blanks = text[len(head) :]
    if (len(head) - len(head.rstrip("\\"))) % 2:  # the first is escaped: its bracket stands for it
        head = head[:-1]
    return head + "".join(f"[{blank}]" for blank in blanks)


def _star_runs(text: str) -> str:
    """``text`` with each segment made of stars only written "**": git's wildmatch takes any
    such run for "**" (any depth), pathspec only "**" itself ("***/a" matched "x/a" but not
    "a" or "x/y/a")."""
    if "***" not in text:
        return text
    negation = "!" if text.startswith("!") else ""
    segments = text[len(negation) :].split("/")
    return negation + "/".join("**" if len(s) > 2 and s.strip("*") == "" else s for s in segments)


# git's wildmatch takes POSIX classes in a bracket expression ("[[:digit:]]*.log"), with
# git's own ASCII meanings (its space holds no vertical tab or form feed); pathspec makes of
# them a set of the class name's letters, which matches none of what git matches. Each is
# rewritten as the characters it stands for, in a form that is safe anywhere in a bracket:
# pathspec pastes a bracket's text into a regular expression as it is (a backslash doubled)
# and ends it at the first "]", so no "]" or backslash is written out ("[-`" covers both);
# it cuts a pattern at every "/", and git's brackets never match one, so no class holds "/";
# no "!" or "^" comes first (a negation); and every class ends with a range (a lone character
# as "c-c"), so that a "-" after it is a literal, as in git, not the start of a range.
_CLASS_RANGES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " - \t-\t", "cntrl": "\x00-\x1f\x7f-\x7f",
    "digit": "0-9", "graph": '"-.0-~!-!', "lower": "a-z", "print": " -.0-~",
    "punct": ":-@!-.[-`{-~", "space": " - \t-\n\r-\r", "upper": "A-Z", "xdigit": "0-9a-fA-F",
}
# As git reads one: "[:" up to the first "]", with ":" before it; any other name is an error.
_CLASS = re.compile(r"\[:([^]]*):\]")


def _each_bracket(
    text: str, negations: tuple[str, ...], rewrite: Callable[[str, int, int], tuple[int, str]]
) -> str:
    """``text`` with each bracket expression replaced by what ``rewrite(text, start, body)``
    gives for it: (the index past its end, its new text); ``start`` is its "[", ``body`` where
    its set begins. Outside brackets a backslash escapes the next character; a set's leading
    "]" (after a negation from ``negations``) is a literal. By hand: git's globs and Python's
    expressions are both read this far alike, and no library exposes either's brackets."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if text[i] != "[":
            out.append(text[i])
            i += 1
            continue
        body = i + 2 if text[i + 1 : i + 2] in negations else i + 1
        if text[body : body + 1] == "]":
            body += 1
        i, replacement = rewrite(text, i, body)
        out.append(replacement)
    return "".join(out)


def _closing(text: str, body: int) -> int:
    """The index of the "]" that closes a bracket whose set begins at ``body`` (a backslash
    escapes the next character), or len(text) where none does. For text whose classes are
    already ranges (see _brackets), or a regular expression."""
    end = body
    while end < len(text) and text[end] != "]":
        end += 2 if text[end] == "\\" else 1
    return min(end, len(text))


def _ends_in_open_bracket(text: str) -> bool:
    """Whether ``text`` ends inside a bracket expression that it never closes."""
    open_at_end = False

    def skip(text: str, start: int, body: int) -> tuple[int, str]:
        nonlocal open_at_end
        end = _closing(text, body)
        open_at_end = end >= len(text)
        return end + 1, ""

    _each_bracket(text, ("!", "^"), skip)
    return open_at_end


def _brackets(text: str) -> str:
    """``text`` with each ``[:name:]`` inside a bracket expression replaced by its ranges; a
    ValueError for a name that is not a class (git's pattern then matches nothing), and for a
    "/" inside a bracket: git reads "a[/b]c" as one bracket (matching "abc"), pathspec cuts
    the pattern at the "/". Neither pathspec nor fnmatch reads classes, and a bracket's
    extent must be known to tell a class from a set that holds "[" and ":"."""
    return _each_bracket(text, ("!", "^"), _glob_bracket) if "[" in text else text


def _glob_bracket(text: str, start: int, body: int) -> tuple[int, str]:
    """One bracket of a git pattern, its classes rewritten (see _brackets)."""
    out = [text[start:body]]
    slash = False
    j = body
    while j < len(text) and text[j] != "]":
        match = _CLASS.match(text, j)
        if text[j] == "\\":
            slash = slash or text[j + 1 : j + 2] == "/"
            out.append(text[j : j + 2])
            j += 2
        elif match is None:
            slash = slash or text[j] == "/"
            out.append(text[j])
            j += 1
        elif match[1] in _CLASS_RANGES:
            out.append(_CLASS_RANGES[match[1]])
            j = match.end()
        else:
            raise ValueError(f"[:{match[1]}:] is not a character class")
    if slash and j < len(text):
        raise ValueError('a "/" inside a bracket expression is not supported')
    if j < len(text) and "\\" in text[body:j]:
        return j + 1, _escaped_bracket(text, start, j)
    out.append(text[j : j + 1])  # the closing "]" (none: pathspec judges the rest)
    return j + 1, "".join(out)


def _escaped_bracket(text: str, start: int, end: int) -> str:
    """The bracket ``text[start:end + 1]``, which holds an escape ("[\\]a]", "[\\-z]"), as
    git's wildmatch reads it (a backslash takes the next character as it is, in a range
    too), written out for pathspec, which ends a bracket at its first "]" and takes a
    backslash for a character: each character or range as "lo-hi", with "]" first and "-"
    last, where Python's sets take them for characters, and nothing first that pathspec takes
    for a negation. By hand for the reason _each_bracket gives."""
    negated = text[start + 1] in "!^"
    spans: list[tuple[str, str]] = []
    classes: list[str] = []
    before = ""  # the character a "-" makes the start of a range (none after a class)
    j = start + 2 if negated else start + 1
    while j < end:  # as wildmatch.c's loop, a leading "]" a character
        char = text[j]
        match = _CLASS.match(text, j)
        if char == "\\":
            char = text[j + 1]
            j += 2
        elif char == "-" and before and text[j + 1] != "]":
            last = text[j + 2] if text[j + 1] == "\\" else text[j + 1]
            j += 3 if text[j + 1] == "\\" else 2
            if before <= last:  # a reversed range matches nothing (its start did, alone)
                spans.append((before, last))
            before = last
            continue
        elif match is not None:  # a known class: _glob_bracket has refused any other
            classes.append(_CLASS_RANGES[match[1]])
            before = ""
            j = match.end()
            continue
        else:
            j += 1
        spans.append((char, char))
        before = char
    spans, close = _taken_out(spans, "]")
    spans, dash = _taken_out(spans, "-")
    if negated or close:
        lead = ""  # what follows "[!" or "]" is a character whatever it is
    else:
        spans = [part for lo, hi in spans for part in _split_negation(lo, hi)]
        plain = [(lo, hi) for lo, hi in spans if lo not in "!^"]
        if plain:
            spans.remove(plain[0])
            lead = f"{plain[0][0]}-{plain[0][1]}"
        elif classes:  # none starts with "!" or "^" (see _CLASS_RANGES)
            lead = classes.pop(0)
        elif dash:
            lead, dash = "-", False
        elif len(spans) == 1:
            return "\\" + spans[0][0]  # a bracket of one character is that character
        else:
            raise ValueError('a bracket of only escaped "!" and "^" is not supported')
    body = lead + "".join(f"{lo}-{hi}" for lo, hi in spans) + "".join(classes)
    return "[" + ("!" if negated else "") + ("]" if close else "") + body + (
        "-" if dash else "") + "]"


def _split_negation(lo: str, hi: str) -> list[tuple[str, str]]:
    """The range lo-hi with a first "!" or "^" apart, so that the rest can lead a bracket."""
    if lo in "!^" and lo < hi:
        return [(lo, lo), (chr(ord(lo) + 1), hi)]
    return [(lo, hi)]


def _taken_out(spans: list[tuple[str, str]], char: str) -> tuple[list[tuple[str, str]], bool]:
    """``spans`` without ``char``, and whether one of them held it."""
    kept: list[tuple[str, str]] = []
    held = False
    for lo, hi in spans:
        if not lo <= char <= hi:
            kept.append((lo, hi))
            continue
        held = True
        if lo < char:
            kept.append((lo, chr(ord(char) - 1)))
        if char < hi:
            kept.append((chr(ord(char) + 1), hi))
    return kept, held


def _negations_skip_slash(regex: str) -> str:
    """pathspec's ``regex`` with each negated bracket kept off a "/": git's brackets never
    match one, pathspec's "[!a]" does, so that "x[!a]y" left "x/y" out of the archive.

    A lookahead goes before each negated bracket: the bracket's own text (which may hold
    "[", "]" or "-" anywhere) is not touched. pathspec has no option for it."""
    return _each_bracket(regex, ("^",), _regex_bracket) if "[^" in regex else regex


def _regex_bracket(regex: str, start: int, body: int) -> tuple[int, str]:
    """One bracket of an expression, behind a lookahead if negated (see _negations_skip_slash)."""
    j = _closing(regex, body)
    bracket = regex[start : j + 1]
    # "[^/]" is pathspec's own "*" and "?" (quantified: a lookahead would change "*").
    lookahead = "(?!/)" if bracket.startswith("[^") and bracket != "[^/]" else ""
    return j + 1, lookahead + bracket


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


class Excludes:
    """git's decision on each path of a walk that, as git's own, never enters an excluded
    directory: "it is not possible to re-include a file if a parent directory is excluded".

    pathspec turns each pattern into a regular expression. Which pattern decides is written
    here, as git does it (dir.c, last_matching_pattern: the last pattern that matches the path
    itself wins; one with a trailing slash matches directories only), because pathspec's
    GitIgnoreSpec answers for file paths, differently: it ranks ``!*/`` below ``*``, so every
    directory stays excluded; it re-includes ``data/keep`` below ``data/``; and it takes
    ``foo/**`` to match ``foo/`` and ``a/**/`` to match ``a`` (losing the files in ``a``).
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        import pathspec

        texts: list[tuple[int, bool, str]] = []  # (index, directories only, pattern)
        try:
            for index, pattern in enumerate(patterns):
                dirs_only, text = _for_pathspec(pattern)
                if text not in ("", "!"):  # "/" and "!/" match nothing
                    texts.append((index, dirs_only, text))
            with _quiet_sets():
                compiled = pathspec.GitIgnoreSpec.from_lines([t for _, _, t in texts]).patterns
        except (ValueError, re.error):
            for pattern in patterns:  # name the first pattern that does not compile
                reason = invalid_pattern(pattern)
                if reason is not None:
                    raise ConfigError(
                        f"exclude pattern {pattern!r} is not valid: {reason}"
                    ) from None
            raise
        self._rules: list[tuple[re.Pattern[str], bool, bool, int]] = []  # the last first
        for (index, dirs_only, _), rule in zip(reversed(texts), reversed(compiled), strict=True):
            if rule.regex is not None and rule.include is not None:  # None: a comment
                regex = rule.regex
                kept_off_slash = _negations_skip_slash(regex.pattern)
                if kept_off_slash != regex.pattern:  # most have no negated bracket
                    with _quiet_sets():
                        regex = re.compile(kept_off_slash, regex.flags)
                self._rules.append((regex, rule.include, dirs_only, index))

    def decide(self, path: str, is_dir: bool) -> tuple[int, bool] | None:
        """(index, excludes?) of the pattern that decides on ``path`` ("/"-separated, relative
        to the root), or None when none matches it."""
        path = _bytewise(path)
        for regex, excludes, dirs_only, index in self._rules:
            if dirs_only and not is_dir:
                continue
            match = regex.search(path)
            # pathspec extends a pattern to the paths below what it matches, marking that part
            # with a named group: such a match is a parent's, decided when the walk reached
            # it. The expression tries the longest leading path first, so its first match
            # stops at a parent only when the whole path does not match (a test checks this).
            if match is not None and match.lastgroup is None:
                return index, excludes
        return None

    def excluded(self, path: str, is_dir: bool) -> bool:
        decision = self.decide(path, is_dir)
        return decision is not None and decision[1]


@dataclass
class Plan:
    """What ``create`` would archive, each path it would leave out with the reason, and each it
    would skip (``on_error="skip"``: a directory it cannot list, a special file) and why."""

    # (path, kind, size, a link's target or None)
    included: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, _, size, _ in self.included)


def plan(
    source: str, config: ArchiveConfig, origins: list[str], output: str | None = None
) -> Plan:
    """Run the real collector, then name the pattern that excluded each top-most left-out path.

    A path the collector cannot archive fails the plan, or is skipped, as it would ``create``.
    ``output`` (-o) and its sidecars are left out, as create leaves them out of the archive.
    """
    from ._create.collect import Collector, check_name
    from ._formats import CompressionFormat
    from ._manifest import FILE

    collection = Collector(
        source,
        exclude_patterns=config.exclude_patterns,
        exclude_paths=set() if output is None else {
            os.path.abspath(output + suffix) for suffix in ("", ".sha256", ".meta")
        },
        follow_symlinks=config.follow_symlinks,
        max_file_size=config.max_file_size,
        skip_errors=config.on_error == "skip",
        name_check=functools.partial(check_name, zip_rules=config.format is CompressionFormat.ZIP),
        hard_links=config.hard_links and config.format is not CompressionFormat.ZIP,
    ).collect()
    root = os.path.realpath(source)
    result = Plan(skipped=collection.skipped)
    for e in collection.entries:
        # A file create could not open (no read permission) fails it or is skipped by it:
        # collection only stats it, so the plan opens it as create's reader does.
        reason = _unopenable(os.path.join(root, e.path), config) if e.kind == FILE else None
        if reason is None:
            result.included.append((e.path, e.kind, e.size, e.target))
        elif config.on_error == "skip":
            result.skipped.append((e.path, reason))
        else:
            raise SourceError(reason, e.path)
    kept = {path for path, _, _, _ in result.included} | {""}
    skipped = {path for path, _ in result.skipped}
    excludes = Excludes(config.exclude_patterns)
    for directory, dirs, files in os.walk(root, followlinks=config.follow_symlinks):
        dirs.sort()  # report in archive order
        rel = os.path.relpath(directory, root).replace(os.sep, "/")
        rel = "" if rel == "." else rel
        if rel not in kept:
            dirs[:] = []  # reported at its top-most excluded directory
            continue
        for name in sorted([*dirs, *files]):
            path = f"{rel}/{name}" if rel else name
            if path in kept or path in skipped:
                continue
            # A link to a directory is a directory to the collector only when it follows links.
            is_dir = name in dirs and (
                config.follow_symlinks or not os.path.islink(os.path.join(directory, name))
            )
            decision = excludes.decide(path, is_dir)
            if decision is not None and decision[1]:
                pattern = config.exclude_patterns[decision[0]]
                result.excluded.append((path, f"pattern {pattern!r} from {origins[decision[0]]}"))
    return result


def _unopenable(path: str, config: ArchiveConfig) -> str | None:
    """Why create's reader could not open the file ``path`` (its message), or None."""
    from ._create.files import open_source

    try:
        os.close(open_source(path, config.follow_symlinks))
    except SourceError as exc:
        return str(exc)
    return None
