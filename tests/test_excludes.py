"""Excludes decide as git does: each layout's selection is compared with ``git check-ignore``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from arcman._create.collect import Collector
from arcman._excludes import gitignore_patterns

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is the reference for gitignore rules")


def _build(root: Path, layout: dict[str, str]) -> Path:
    """Files of ``layout`` (path -> content); a path ending in "/" is an empty directory."""
    for rel, content in layout.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def _arcman_kept(root: Path) -> set[str]:
    """The paths ``arcman create --gitignore`` archives from ``root``, .git left aside."""
    patterns = [pattern for pattern, _ in gitignore_patterns(str(root))]
    collector = Collector(str(root), exclude_patterns=patterns, exclude_paths=set(),
                          follow_symlinks=False, max_file_size=None, skip_errors=False)
    return {p for p in collector.collect().entries.names if p.split("/")[0] != ".git"}


def _git_kept(root: Path) -> set[str]:
    """The paths under ``root`` that git does not ignore (directories too, unlike ls-files)."""
    assert GIT is not None
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    paths = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = os.path.relpath(directory, root)
        paths.update(os.path.normpath(os.path.join(rel, name)) for name in [*dirs, *files])
    subprocess.run([GIT, "init", "-q", str(root)], check=True, env=env)
    result = subprocess.run(
        [GIT, "-C", str(root), "check-ignore", "--stdin", "-z"], input="\0".join(sorted(paths)),
        capture_output=True, text=True, check=False, env=env, errors="surrogateescape",
    )
    assert result.returncode in (0, 1), result.stderr  # 1: nothing ignored
    return paths - set(filter(None, result.stdout.split("\0")))


def _same_as_git(root: Path) -> None:
    assert _arcman_kept(root) == _git_kept(root)


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
}


@needs_git
@pytest.mark.parametrize("name", LAYOUTS)
def test_selection_is_gits(tmp_path: Path, name: str) -> None:
    _same_as_git(_build(tmp_path / "t", LAYOUTS[name]))


def test_an_escaped_trailing_space_is_part_of_the_pattern(tmp_path: Path) -> None:
    """git strips trailing spaces unless one is escaped ("foo\\ "); pathspec must get it."""
    root = _build(tmp_path / "t", LAYOUTS["escaped trailing space"])
    patterns = [pattern for pattern, _ in gitignore_patterns(str(root))]
    assert patterns == ["foo\\ ", "bar\\ ", "baz", "qux\\\\"]
    assert _arcman_kept(root) == {".gitignore", "foo", "bar", "baz "}


def test_a_directory_name_is_literal_in_its_gitignore_patterns(tmp_path: Path) -> None:
    """``[ab]/.gitignore`` applies under ``[ab]``, not under ``a`` and ``b``."""
    root = _build(tmp_path / "t", LAYOUTS["glob characters in directory names"])
    assert [pattern for pattern, _ in gitignore_patterns(str(root))] == [
        "\\!neg/**/k", "\\#hash/**/k", "\\?/**/k", "\\[ab\\]/**/*.log",
        "back\\\\slash/**/k", "x\\*/k",
    ]
    assert {"a/k.log", "b/k.log", "xy/k", "z/k", "neg/k", "backslash/k"} <= _arcman_kept(root)
