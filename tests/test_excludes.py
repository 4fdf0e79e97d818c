"""Excludes decide as git does: each layout's selection is compared with ``git check-ignore``."""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import pathspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import ArchiveManager
from arcman._cli import main
from arcman._create.collect import Collector
from arcman._gitignore import gitignore_patterns
from helpers import build_layout, git, git_ignored, gitignore_kept, needs_git, tree_paths


def _git_kept(root: Path) -> set[str]:
    """The paths under ``root`` that git does not ignore (directories too, unlike ls-files)."""
    paths = tree_paths(root)
    git("init", "-q", str(root)).check_returncode()
    return paths - git_ignored(root, sorted(paths))


def _same_as_git(root: Path) -> None:
    assert gitignore_kept(root) == _git_kept(root)


LAYOUTS: dict[str, dict[str, str]] = {
    "escaped trailing space": {
        ".gitignore": "foo\\ \nbar\\  \nbaz  \nqux\\\\ \n",
        "foo": "", "foo ": "", "bar": "", "bar ": "", "baz": "", "baz ": "", "qux\\": "",
    },
    "byte order mark": {".gitignore": "\ufeff*.log\n", "x.log": "", "x.txt": ""},
    "glob characters in directory names": {
        "[ab]/.gitignore": "*.log\n", "[ab]/k.log": "", "a/k.log": "", "b/k.log": "",
        "x*/.gitignore": "/k\n", "x*/k": "", "xy/k": "",
        "?/.gitignore": "k\n", "?/k": "", "z/k": "",
        "!neg/.gitignore": "k\n", "!neg/k": "", "neg/k": "",
        "#hash/.gitignore": "k\n", "#hash/k": "",
        "back\\slash/.gitignore": "k\n", "back\\slash/k": "", "backslash/k": "",
    },
    "everything but directories and python": {
        ".gitignore": "*\n!*/\n!*.py\n!.gitignore\n",
        "a.py": "", "b.txt": "", "src/main.py": "", "src/x.txt": "", "src/deep/y.py": "",
    },
    "a subtree re-included": {
        ".gitignore": "data/**\n!data/keep/\n!data/keep/**\n",
        "data/keep/db": "", "data/keep/sub/db": "", "data/x": "", "data/other/db": "",
    },
    "foo/** leaves foo itself in": {
        ".gitignore": "foo/**\n!foo/keep\n", "foo/keep": "", "foo/x": "", "foo/sub/keep": "",
    },
    "no file comes back from an excluded directory": {
        ".gitignore": "data/\n!data/keep\nlogs\n!logs/keep\n",
        "data/keep": "", "data/x": "", "logs/keep": "",
    },
    "a/**/ excludes the directories below a only": {
        ".gitignore": "a/**/\n", "a/f": "", "a/b/f": "", "a/b/c/f": "",
    },
    "a directory excluded by name, re-included as a directory": {
        ".gitignore": "build\n!build/\n", "build/x": "", "sub/build": "",
    },
    "a negation in a nested .gitignore": {
        ".gitignore": "*.log\ntmp/\n", "keep.log": "", "sub/x.log": "", "sub/keep.log": "",
        "sub/.gitignore": "!keep.log\n!tmp/\n", "sub/tmp/f": "", "tmp/f": "",
    },
    "POSIX character classes": {
        ".gitignore": "[[:digit:]]*.log\n[![:alpha:]]*.tmp\nx[[:upper:][:digit:]]\n"
                      "[]:alpha:]]\nh[[:xdigit:]]\n\\[[:lower:]]\n",
        "1.log": "", "a.log": "", "9z.log": "", "_.tmp": "", "b.tmp": "", "3.tmp": "",
        "xA": "", "x1": "", "xa": "", "]": "", ":": "", "a": "", "hf": "", "hg": "",
        "[l]": "", "[:]": "",
    },
    "a negated bracket never matches a slash": {
        ".gitignore": "x[!a]y\n*[!a]g\nq[^]]r\n", "x/y": "", "xby": "", "f/g": "", "fbg": "",
        "q/r": "", "qsr": "", "q]r": "",
    },
    "a segment of stars only is **": {
        ".gitignore": "***/x\na/****\n!a/***/k\n**/y***\n",
        "x": "", "d/x": "", "d/e/x": "", "a/f": "", "a/b/f": "", "a/b/k": "", "y1": "",
        "d/y2": "",
    },
    "a single star beside a run of stars stays one segment": {
        ".gitignore": "*/***\n", "top": "", "d/x": "", "d/e/x": "",
    },
    "whitespace that git does not trim is literal": {
        ".gitignore": "a /\nb\t\nc\\\t\nd \t/\ne[\t\n",
        "a /x": "", "a/y": "", "b\t": "", "b": "", "c\t": "", "c": "", "d \t/f": "", "d/f": "",
        "e[\t": "", "e[": "", "e\t": "",
    },
    "a line ends at a newline only": {
        ".gitignore": "a\x0cb\nx\ry\np\u2028q\nm\x85n\nk\r\r\n",
        "a\x0cb": "", "a": "", "b": "", "x\ry": "", "x": "", "y": "", "p\u2028q": "", "p": "",
        "q": "", "m\x85n": "", "m": "", "n": "", "k": "", "k\r": "",
    },
    "a ? or a bracket matches one byte, as git's wildmatch": {
        ".gitignore": "?\n[!a]b\n??x\n[[a]y\n",
        "é": "", "c": "", "éb": "", "cb": "", "éx": "", "\udce9": "", "[y": "", "ay": "",
        "by": "",
    },
    "a backslash in a bracket takes the next character as it is": {
        ".gitignore": "a[\\]b]\nb[\\^]\nc[\\[d]\nd[!\\\\]\ne[\\-z]\nf[\\a-\\c]\n",
        "a]": "", "ab": "", "a\\": "", "b^": "", "b\\": "", "c[": "", "cd": "", "c\\": "",
        "d\\": "", "dx": "", "e-": "", "ez": "", "ea": "", "e\\": "", "fb": "", "f\\": "",
    },
    "a pattern that matched the parent does not decide on its children": {
        ".gitignore": "**/x/**/y\n!x/q/x/y/\n", "x/q/x/y/y": "", "x/q/x/y/z": "",
    },
}


@needs_git
@pytest.mark.parametrize("name", LAYOUTS)
def test_selection_is_gits(tmp_path: Path, name: str) -> None:
    _same_as_git(build_layout(tmp_path / "t", LAYOUTS[name]))


def test_an_escaped_trailing_space_is_part_of_the_pattern(tmp_path: Path) -> None:
    """git strips trailing spaces unless one is escaped ("foo\\ "); pathspec must get it."""
    root = build_layout(tmp_path / "t", LAYOUTS["escaped trailing space"])
    patterns = [pattern for pattern, _ in gitignore_patterns(str(root))]
    assert patterns == [".git", "foo\\ ", "bar\\ ", "baz", "qux\\\\"]
    assert gitignore_kept(root) == {".gitignore", "foo", "bar", "baz "}


def test_a_question_mark_or_a_bracket_matches_one_byte(tmp_path: Path) -> None:
    """git matches bytes: "?" and "[!a]" take one byte, not the two of "é" (they took its
    character, excluding what git keeps), and the one of a name that is not UTF-8."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re's FutureWarning on "[[a]" would reach the user
        layout = LAYOUTS["a ? or a bracket matches one byte, as git's wildmatch"]
        root = build_layout(tmp_path / "t", layout)
        assert gitignore_kept(root) == {".gitignore", "é", "éb", "by"}


def test_a_backslash_in_a_bracket_escapes_the_next_character(tmp_path: Path) -> None:
    """As in git's wildmatch ("[\\]b]" is "]" or "b", "[\\-z]" is "-" or "z"); pathspec ended
    the bracket at the escaped "]" and took the backslash for a character."""
    layout = LAYOUTS["a backslash in a bracket takes the next character as it is"]
    root = build_layout(tmp_path / "t", layout)
    assert gitignore_kept(root) == {".gitignore", "a\\", "b\\", "c\\", "d\\", "ea", "e\\", "f\\"}


def test_a_gitignore_line_ends_at_a_newline_only(tmp_path: Path) -> None:
    """As git reads the file: a "\r" before the "\n" is dropped; a lone "\r", a form feed,
    U+0085 and U+2028 belong to the pattern (str.splitlines() broke lines at each)."""
    root = build_layout(tmp_path / "t", LAYOUTS["a line ends at a newline only"])
    patterns = [pattern for pattern, _ in gitignore_patterns(str(root))]
    assert patterns == [".git", "a\x0cb", "x\ry", "p\u2028q", "m\x85n", "k\r"]


def test_whitespace_that_git_does_not_trim_is_literal(tmp_path: Path) -> None:
    """pathspec strips a pattern's trailing whitespace; git only a line's unescaped trailing
    spaces: "a /" is for a directory named "a ", "b<tab>" for a file named so."""
    root = build_layout(tmp_path / "t", LAYOUTS["whitespace that git does not trim is literal"])
    assert gitignore_kept(root) == {".gitignore", "a", "a/y", "b", "c", "d", "d/f", "e[", "e[\t",
                                  "e\t"}


def test_a_directory_name_is_literal_in_its_gitignore_patterns(tmp_path: Path) -> None:
    """``[ab]/.gitignore`` applies under ``[ab]``, not under ``a`` and ``b``."""
    root = build_layout(tmp_path / "t", LAYOUTS["glob characters in directory names"])
    assert [pattern for pattern, _ in gitignore_patterns(str(root))] == [
        ".git", "\\!neg/**/k", "\\#hash/**/k", "\\?/**/k", "\\[ab\\]/**/*.log",
        "back\\\\slash/**/k", "x\\*/k",
    ]
    assert {"a/k.log", "b/k.log", "xy/k", "z/k", "neg/k", "backslash/k"} <= gitignore_kept(root)


@pytest.mark.parametrize("follow", [False, True])
def test_excluded_directory_is_decided_as_in_git(tmp_path: Path, follow: bool) -> None:
    """``foo/**`` leaves ``foo`` in and ``!foo/keep`` then keeps ``foo/keep``, from --exclude
    too; ``*`` with ``!*/`` keeps every directory (pathspec leaves all of them out)."""
    layout = {"foo/keep": "", "foo/x": "", "src/main.py": "", "x.txt": ""}
    root = build_layout(tmp_path / "t", layout)
    (root / "link").symlink_to("src")
    patterns = ["*", "!*/", "!*.py", "foo/**", "!foo/keep"]
    collector = Collector(str(root), exclude_patterns=patterns, exclude_paths=set(),
                          follow_symlinks=follow, max_file_size=None, skip_errors=False)
    kept = set(collector.collect().entries.names)
    # Followed, the link is a directory that '!*/' keeps; not followed, '*' leaves it out.
    links = {"link", "link/main.py"} if follow else set()
    assert kept == {"foo", "foo/keep", "src", "src/main.py"} | links


def test_dry_run_names_the_pattern_that_decided(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_layout(tmp_path / "t", {"foo/keep": "", "foo/x": "", "src/a.py": "", "x.txt": ""})
    (root / "link").symlink_to("src")
    args = ["--exclude", "*", "--exclude", "!*/", "--exclude", "!*.py",
            "--exclude", "foo/**", "--exclude", "!foo/keep"]
    assert main(["create", str(root), "--dry-run", "--json", *args]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in plan["included"]] == ["foo", "foo/keep", "src", "src/a.py"]
    assert {e["path"]: e["reason"] for e in plan["excluded"]} == {
        "foo/x": "pattern 'foo/**' from --exclude",  # the last pattern that matches it
        "link": "pattern '*' from --exclude",  # a link, not a directory: '!*/' is not for it
        "x.txt": "pattern '*' from --exclude",
    }
    assert main(["create", str(root), "-o", str(tmp_path / "a.tar"), "-q", *args]) == 0
    with ArchiveManager() as manager:
        names = [e.name for e in manager.list_archive(tmp_path / "a.tar")]
    assert names == [e["path"] for e in plan["included"]]


# Lines for the generated .gitignore files, and the tree they are tried on.
_LINES = [
    "*", "!*/", "*.log", "!*.log", "!keep.log", "data/", "!data/", "data/**", "!data/keep/",
    "!data/keep/**", "data/*", "!data/keep", "/a", "a/", "a/**/", "!a/b/", "b", "!b", "*/",
    "?", "[ab]", "!*.py", "**", "!**/", "k*", "**/b/**", "/*", "!/a/b/c.py", "b/*.py",
    "a/**/keep.log", "!.gitignore", "#x", "", "a[!x]b", "c[!x]d/", "*[!y]b", "[!a]",
    "***/b", "!***/keep.log", "a/***", "c/****/f.py", "[]b]", "?[!]]", "[a-c]*", "*[[:punct:]]py",
]
_TREE = ["a.log", "keep.log", "x.py", "data/keep/db", "data/keep/k.log", "data/x", "a/b/c.py",
         "a/b/keep.log", "a/f", "b/a/x.log", "c/b", "c/d/e/f.py", "e/"]
_GITIGNORES = ["", "a/", "data/", "c/d/"]


@needs_git
def test_a_gitignore_that_is_a_symlink_is_not_read_as_in_git(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = build_layout(tmp_path / "t", {"pats": "a\n", "a": "", "b": "", "sub/a": ""})
    (root / ".gitignore").symlink_to("pats")
    (root / "sub" / ".gitignore").symlink_to("../pats")
    assert gitignore_kept(root) == _git_kept(root)
    assert "a" in gitignore_kept(root)
    caplog.clear()
    assert main(["create", str(root), "--gitignore", "--dry-run", "--json"]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"not reading {root / name}: a symbolic link (git does not follow one)"
        for name in (".gitignore", "sub/.gitignore")
    ]


def test_a_gitignore_in_an_excluded_directory_is_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As git, which never enters it: its patterns could not bring anything back. Nor does a
    line that git would refuse there stop the run (a ConfigError once it is read)."""
    root = build_layout(tmp_path / "t", {
        ".gitignore": "build/\nnode_modules/\n", "src/a.py": "",
        "build/.gitignore": "[z-a]\n", "build/x": "",
        "node_modules/.gitignore": "!*\n", "node_modules/m/x.js": "",
        "src/node_modules/.gitignore": "[z-a]\n",
    })
    found = [origin for _, origin in gitignore_patterns(str(root))]
    assert found == ["--gitignore (git's own directory)", f"{root}/.gitignore:1",
                     f"{root}/.gitignore:2"]
    assert main(["create", str(root), "--gitignore", "--dry-run"]) == 0
    # What comes after the .gitignore files can re-include a directory: its file is read.
    assert main(["create", str(root), "--gitignore", "--dry-run", "--exclude", "!build/"]) == 2
    assert f"{root}/build/.gitignore:1: pattern '[z-a]' is not valid" in capsys.readouterr().err


@needs_git
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(_LINES), max_size=6), min_size=4, max_size=4))
def test_generated_gitignores_select_as_git_does(tmp_path_factory: pytest.TempPathFactory,
                                                 files: list[list[str]]) -> None:
    layout = dict.fromkeys(_TREE, "")
    for directory, lines in zip(_GITIGNORES, files, strict=True):
        if lines:
            layout[f"{directory}.gitignore"] = "\n".join(lines) + "\n"
    _same_as_git(build_layout(tmp_path_factory.mktemp("t"), layout))


# Pieces of a pattern: globs, brackets (negated, with classes, a leading "]", a "-" at an
# end), escapes. A "**" only stands alone in a segment: git 2.39 reads "a**/b" as "a" + "**/b",
# against its documentation (and pathspec as "a*/b").
_TOKENS = ["a", "b", "x", " ", "*", "?", "[ab]", "[!a]", "[^b]", "[a-c]", "[]a]", "[!]]",
           "[a-]", "[-a]", "[*]", "[?]", "[[:alpha:]]", "[[:punct:]]", "\\*", "\\[", "]", "!", "#",
           "\t", "\\\t", "é", "[é]", "[\\]a]", "[\\-a]", "[\\\\]"]
_TOKEN_TREE = ["ba", "x/a", "x/b", "a/b/c", "a/x/b", "b/a/a", "*", "?", "[ab]", "]", "-",
               "a b", "a /x", "a\t", "é", "éb/a", "a/a", "ab/x", "c/d/e", "!a", "#a", "a\\b", "[",
               "aa/bb/cc"]


@needs_git
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(
    st.tuples(
        st.sampled_from(["", "!", "/", "!/"]),
        st.lists(st.one_of(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=3).map("".join),
                           st.sampled_from(["**", "***"])), min_size=1, max_size=3),
        st.booleans(),
    ).map(lambda t: t[0] + "/".join(t[1]) + ("/" if t[2] else "")),
    min_size=1, max_size=3,
))
def test_generated_patterns_select_as_git_does(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    layout = dict.fromkeys(_TOKEN_TREE, "")
    layout[".gitignore"] = "\n".join(lines) + "\n"
    _same_as_git(build_layout(tmp_path_factory.mktemp("t"), layout))


_SEGMENTS = ["x", "y", "*", "?", "x*", "[xy]", "**"]


@given(st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=4), st.booleans(),
       st.lists(st.sampled_from(["x", "y", "xy", "yx"]), min_size=1, max_size=6))
def test_a_match_stops_at_a_parent_only_when_the_whole_path_does_not_match(
    segments: list[str], anchored: bool, parts: list[str]
) -> None:
    """What Excludes relies on: pathspec's first match of a path is the whole path if any is
    (the named group that marks a parent's match is ruled out in the reference)."""
    from arcman._excludes import Excludes  # (the module's other tests run on older arcman)

    pattern = ("/" if anchored else "") + "/".join(segments)
    path = "/".join(parts)
    regex = pathspec.GitIgnoreSpec.from_lines([pattern]).patterns[0].regex
    assert regex is not None
    whole = re.compile(regex.pattern.replace("(?P<", "(?!)(?P<"))  # no parent's match
    assert Excludes([pattern]).excluded(path, is_dir=True) == bool(whole.search(path))


def test_dry_run_fails_or_skips_an_unlistable_directory_as_create_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = build_layout(tmp_path / "t", {"a.txt": "", "locked/f": ""})

    def refusing(real: Any) -> Any:  # as chmod 000 does to anyone but root
        def listing(path: str | int = ".", *args: Any) -> Any:
            if isinstance(path, str) and os.path.basename(path) == "locked":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            return real(path, *args)

        return listing

    monkeypatch.setattr(os, "scandir", refusing(os.scandir))
    monkeypatch.setattr(os, "open", refusing(os.open))  # the collector lists a descriptor
    archive = tmp_path / "a.tar"
    for args in (["--dry-run"], ["-o", str(archive)]):
        assert main(["create", str(root), *args]) == 4
        assert "cannot archive 'locked': Permission denied" in capsys.readouterr().err
    assert main(["create", str(root), "--dry-run", "--skip-unreadable"]) == 6
    assert "! locked  (skipped: Permission denied)" in capsys.readouterr().out
    assert main(["create", str(root), "--dry-run", "--skip-unreadable", "--json"]) == 6
    plan = json.loads(capsys.readouterr().out)
    assert plan["skipped"] == [{"path": "locked", "reason": "Permission denied"}]
    assert main(["create", str(root), "-o", str(archive), "--skip-unreadable", "-q"]) == 6
    assert "skipped locked: Permission denied" in capsys.readouterr().err
    with ArchiveManager() as manager:
        names = [e.name for e in manager.list_archive(archive)]
    assert names == [e["path"] for e in plan["included"]] == ["a.txt", "locked"]


def test_dry_run_fails_or_skips_an_unreadable_file_as_create_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file without read permission is listed by collection (a stat is enough) but cannot be
    opened: the plan must fail (exit 4) or skip it (exit 6) as create does, not list it as
    archived with exit 0."""
    root = build_layout(tmp_path / "t", {"a.txt": "", "secret": "s"})
    real_open = os.open
    denied = str(root / "secret")

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == denied:  # as chmod 600 does to anyone but its owner and root
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)
    archive = tmp_path / "a.tar"
    for args in (["--dry-run"], ["-o", str(archive)]):
        assert main(["create", str(root), *args]) == 4
        assert f"cannot read {denied!r}: Permission denied" in capsys.readouterr().err
    assert main(["create", str(root), "--dry-run", "--skip-unreadable", "--json"]) == 6
    plan = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in plan["skipped"]] == ["secret"]
    assert main(["create", str(root), "-o", str(archive), "--skip-unreadable", "-q"]) == 6
    with ArchiveManager() as manager:
        names = [e.name for e in manager.list_archive(archive)]
    assert names == [e["path"] for e in plan["included"]] == ["a.txt"]


def test_dry_run_leaves_out_the_output_inside_the_tree_as_create_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`create . -o app.tar.gz` keeps the archive (and its sidecars) out of itself: a dry run
    with the same -o, after an earlier create, must not list them as going in."""
    root = build_layout(tmp_path / "t", {"a.txt": "x"})
    out = str(root / "app.tar.gz")
    assert main(["create", str(root), "-o", out, "-q"]) == 0
    assert main(["create", str(root), "-o", out, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    with ArchiveManager() as manager:
        assert main(["create", str(root), "-o", out, "-q"]) == 0
        names = [e.name for e in manager.list_archive(out)]
    assert [e["path"] for e in plan["included"]] == names == ["a.txt"]


@pytest.mark.parametrize("ext", ["tar.gz", "zip"])
def test_dry_run_refuses_the_names_create_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    """A copy of a manifest left at the root, or (zip) a name that is not UTF-8, fails the plan
    or is skipped by it as it fails or is skipped by create."""
    root = build_layout(tmp_path / "t", {"a.txt": "", ".arcman-manifest.jsonl": "{}"})
    if ext == "zip":
        os.remove(root / ".arcman-manifest.jsonl")
        (root / os.fsdecode(b"bad\xff")).write_text("")
    out = str(tmp_path / f"a.{ext}")
    for args in (["--dry-run"], []):
        assert main(["create", str(root), "-o", out, "-q", *args]) == 4
        assert "cannot archive" in capsys.readouterr().err
    assert main(["create", str(root), "-o", out, "--dry-run", "--skip-unreadable", "--json"]) == 6
    plan = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in plan["included"]] == ["a.txt"] and len(plan["skipped"]) == 1


def test_command_line_excludes_override_gitignore_negations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As in git, where command-line patterns take precedence: a .gitignore that re-includes
    a file cannot bring back one the user excluded by name (a secret, say)."""
    root = build_layout(tmp_path / "t", {".gitignore": "*.env\n!keep.env\n", "keep.env": "x",
                                   "other.env": "", "a.txt": ""})
    (tmp_path / "extra").write_text("a.txt\n")
    code = main(["create", str(root), "--gitignore", "--dry-run", "--json",
                 "--exclude", "keep.env", "--exclude-from", str(tmp_path / "extra")])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in plan["included"]] == [".gitignore"]
    assert {e["path"]: e["reason"].split(" from ")[1] for e in plan["excluded"]} == {
        "a.txt": f"{tmp_path / 'extra'}:1", "keep.env": "--exclude",
        "other.env": f"{root / '.gitignore'}:1",
    }


@pytest.mark.parametrize("pattern", ["[z-a]", "foo\\", "é\\", "a[/b]c", "x[!/]", "[\\/]"])
def test_a_pattern_that_does_not_compile_is_a_config_error(
    tmp_path: Path, pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """They were re.error (exit 70, "internal error") and pathspec's own ValueError. A bracket
    that holds a "/" is read whole by git ("a[/b]c" matches "abc"), cut at the "/" by
    pathspec (it matched nothing): refused rather than matched otherwise than git."""
    from arcman import ArchiveConfig, ConfigError

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("a")
    out = tmp_path / "a.tar.gz"
    config = ArchiveConfig(exclude_patterns=["*.log", pattern])
    with ArchiveManager(config) as manager, pytest.raises(
        ConfigError, match=re.escape(f"exclude pattern {pattern!r}")
    ):
        manager.create_archive(tmp_path / "src", out)
    for args in (["-o", str(out)], ["--dry-run"]):
        assert main(["create", str(tmp_path / "src"), *args, "--exclude", pattern]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not valid" in err
        if pattern.endswith("\\"):
            assert err.endswith("is not valid: it ends in a backslash that escapes nothing\n")
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_an_invalid_line_of_a_pattern_file_is_named_by_its_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was named as re-rooted ('sub/**/[z-a]'), a pattern the user never wrote."""
    root = build_layout(tmp_path / "t", {"a": "a", "sub/.gitignore": "# build\n*.o\n[z-a]\n"})
    (tmp_path / "extra").write_text("*.log\n\nfoo\\\n")
    out = tmp_path / "a.tar.gz"
    gitignore = str(root / "sub" / ".gitignore")
    for args, where, line in (
        (["--gitignore"], f"{gitignore}:3", "[z-a]"),
        (["--exclude-from", str(tmp_path / "extra")], f"{tmp_path / 'extra'}:3", "foo\\"),
    ):
        for output in (["-o", str(out)], ["--dry-run"]):
            assert main(["create", str(root), *output, *args]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1
            assert f"{where}: pattern {line!r} is not valid" in err
    assert sorted(os.listdir(tmp_path)) == ["extra", "t"]


_CLASSES = ("alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
            "space", "upper", "xdigit")


@needs_git
@pytest.mark.parametrize("name", _CLASSES)
def test_a_posix_class_matches_the_characters_git_matches(tmp_path: Path, name: str) -> None:
    """Each class against every ASCII character a name can hold, alone, negated, beside a
    "-" and across a "/" (which no bracket matches). Six of them (space, punct...) were
    refused: pathspec read them as a set of their letters."""
    layout = {f"f{chr(code)}": "" for code in range(1, 128) if chr(code) not in "/."}
    layout.update({"f.": "", "f/g": "", "xz": "", "x-": "", "xq": "", "y/z": ""})
    layout[".gitignore"] = (
        f"f[[:{name}:]]\n*[![:{name}:]]g\nx[[:{name}:]-z]\ny[[:{name}:]]z\n"
    )
    _same_as_git(build_layout(tmp_path / "t", layout))


def test_a_name_that_is_not_a_posix_class_is_refused(tmp_path: Path) -> None:
    """git's wildmatch gives up on "[[:bogus:]]" (the pattern matches nothing): a typo."""
    from arcman import ArchiveConfig, ConfigError

    root = build_layout(tmp_path / "t", {"a b": "", ".gitignore": "*[[:bogus:]]*\n"})
    with pytest.raises(ConfigError, match=re.escape("[:bogus:] is not a character class")):
        gitignore_patterns(str(root))
    config = ArchiveConfig(exclude_patterns=["[[:Space:]]"])
    with ArchiveManager(config) as manager, pytest.raises(
        ConfigError, match=re.escape("[:Space:] is not a character class")
    ):
        manager.create_archive(root, tmp_path / "a.tar")
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_gitignore_leaves_out_gits_own_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkout's .git (its whole history, and whatever secrets it ever held) is not part
    of the tree git sees: `create . --gitignore` went on to archive it."""
    root = build_layout(tmp_path / "t", {".git/config": "[core]\n", "sub/.git": "gitdir: ../x\n",
                                   "a": ""})
    assert main(["create", str(root), "--gitignore", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in plan["included"]] == ["a", "sub"]
    assert {e["path"]: e["reason"] for e in plan["excluded"]} == {
        ".git": "pattern '.git' from --gitignore (git's own directory)",
        "sub/.git": "pattern '.git' from --gitignore (git's own directory)",
    }
    assert main(["create", str(root), "--dry-run", "--json"]) == 0  # without it, all is kept
    assert ".git/config" in {e["path"] for e in json.loads(capsys.readouterr().out)["included"]}
