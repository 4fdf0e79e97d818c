"""--gitignore in a tree inside a repository: the .gitignore files above it apply, rewritten to
apply from the tree, as git applies them (git check-ignore is the reference)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman._cli import main
from arcman._gitignore import from_below, gitignore_patterns
from helpers import (
    build_layout,
    git,
    git_ignored,
    gitignore_kept,
    needs_git,
    run_arcman,
    tree_paths,
)


@pytest.mark.parametrize(("pattern", "components", "rewritten"), [
    ("*.log", ["x"], ["*.log"]),  # no slash but at the end: any depth, from the tree too
    ("build/", ["x", "y"], ["build/"]),
    ("/x/y/build", ["x", "y"], ["/build"]),
    ("x/y/build/", ["x", "y"], ["/build/"]),  # a slash in the middle anchors it as well
    ("!/x/y/keep", ["x", "y"], ["!/keep"]),
    ("x/*/b", ["x", "y"], ["/b"]),
    ("[xz]/y?/b", ["x", "y1"], ["/b"]),
    ("x/y /b", ["x", "y"], []),  # "y " is no "y": a space in a segment is no trailing space
    ("**/b", ["x"], ["/**/b"]),
    ("**/x/b", ["x"], ["/b", "/**/x/b"]),  # "**" takes none of the components, or more
    ("x/**/b", ["x", "y"], ["/**/b"]),  # b at any depth in the tree, its top too
    ("a/**", ["a"], ["/**"]),  # everything in the tree
    ("/x", ["x"], []),  # the tree itself: archived as asked
    ("/x/y", ["x", "y", "z"], []),  # a directory above the tree
    ("/other/b", ["x"], []),  # elsewhere in the repository
])
def test_a_pattern_from_above_is_rewritten_to_apply_from_the_tree(
    pattern: str, components: list[str], rewritten: list[str]
) -> None:
    assert from_below(pattern, components) == rewritten


def test_the_repositorys_gitignore_applies_to_a_tree_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = build_layout(tmp_path / "repo", {
        ".gitignore": "__pycache__/\n*.env\n/services/api/build/\n/services/web/\n",
        "services/.gitignore": "!keep.env\n",
        "services/api/app.py": "", "services/api/.env": "", "services/api/keep.env": "",
        "services/api/__pycache__/app.pyc": "", "services/api/build/out": "",
        "services/api/lib/build/x": "",
    })
    (repo / ".git").mkdir()
    tree = repo / "services" / "api"
    assert gitignore_kept(tree) == {"app.py", "keep.env", "lib", "lib/build", "lib/build/x"}
    assert main(["create", str(tree), "--gitignore", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (f"- build  (pattern '/build/' from {repo}/.gitignore:3, written there as "
            "'/services/api/build/')") in out
    # Outside a repository, the directories above the tree are not looked at.
    os.rmdir(repo / ".git")
    assert [o for _, o in gitignore_patterns(str(tree))] == ["--gitignore (git's own directory)"]


def test_a_gitignore_that_is_no_regular_file_is_not_read(tmp_path: Path) -> None:
    """A FIFO named .gitignore made the walk wait for ever for a writer (git waits too); it
    is passed over with a warning, and create then refuses it as the special file it is."""
    tree = build_layout(tmp_path / "t", {"a": ""})
    os.mkfifo(tree / ".gitignore")
    result = run_arcman("create", tree, "--gitignore", "--dry-run")
    assert f"not reading {tree / '.gitignore'}: not a regular file" in result.stderr
    assert result.returncode == 4 and "special file" in result.stderr


def _git_kept_below(repo: Path, tree: Path) -> set[str] | None:
    """The paths under ``tree`` that git, run in ``repo``, does not ignore; None when it
    ignores the tree itself or a directory above it (arcman archives the tree as asked)."""
    git("init", "-q", str(repo)).check_returncode()
    above = tree.relative_to(repo).parts
    if git_ignored(repo, ["/".join(above[: n + 1]) for n in range(len(above))]):
        return None
    paths = tree_paths(tree)
    return paths - git_ignored(tree, sorted(paths))


_SEGMENTS = ["x", "y", "y ", "\\x", "a", "*", "**", "?", "x*", "[xy]", "[!x]", "***", "é"]
_LAST = ["a", "b", "*.log", "k*", "d/", "a/", "**", "*"]
_PATTERNS = st.tuples(
    st.sampled_from(["", "/", "!", "!/"]), st.lists(st.sampled_from(_SEGMENTS), max_size=3),
    st.sampled_from(_LAST),
).map(lambda t: t[0] + "/".join([*t[1], t[2]]))
_TREE = ["a", "b", "c.log", "d/a", "d/k1", "e/f/a", "e/b", "x/a", "y/b.log", "kk"]


@needs_git
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_PATTERNS, min_size=1, max_size=4), st.lists(_PATTERNS, max_size=3),
    st.lists(_PATTERNS, max_size=2),
)
def test_generated_gitignores_above_the_tree_select_as_git_does(
    tmp_path_factory: pytest.TempPathFactory, top: list[str], middle: list[str],
    own: list[str],
) -> None:
    """The repository's root, the directory between it and the tree, and the tree each have
    a .gitignore; the tree is repo/x/y."""
    layout = {f"x/y/{name}": "" for name in _TREE}
    layout |= {"x/sibling": "", ".gitignore": "\n".join(top) + "\n",
               "x/.gitignore": "\n".join(middle) + "\n", "x/y/.gitignore": "\n".join(own) + "\n"}
    repo = build_layout(tmp_path_factory.mktemp("t") / "repo", layout)
    kept = _git_kept_below(repo, repo / "x" / "y")
    if kept is not None:
        assert gitignore_kept(repo / "x" / "y") == kept


def _repository_with_tracked_ignored_files(root: Path) -> Path:
    """A repository whose .gitignore rules match files it tracks (added with ``git add -f``):
    build/keep.txt and x.log; ok.txt is tracked and not ignored, y.log ignored and untracked."""
    build_layout(root, {".gitignore": "build/\n*.log\n", "build/keep.txt": "k", "x.log": "x",
                        "y.log": "y", "ok.txt": "o"})
    assert git("init", "-q", str(root)).returncode == 0
    assert git("-C", str(root), "add", "-f", "build/keep.txt", "x.log", "ok.txt").returncode == 0
    return root


@needs_git
@pytest.mark.parametrize("dry_run", [False, True])
def test_files_git_tracks_that_its_rules_leave_out_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, dry_run: bool
) -> None:
    """git's rules do not apply to files it tracks: --gitignore, which reads the rules and
    not git's index, leaves them out, and says so instead of dropping them unnoticed."""
    repository = _repository_with_tracked_ignored_files(tmp_path / "repo")
    output = ["--dry-run"] if dry_run else ["-o", str(tmp_path / "a.tar.gz")]
    assert main(["create", str(repository), "--gitignore", *output]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "--gitignore left out 2 files that git tracks, which git keeps (its ignore rules do not "
        "apply to tracked files): build/keep.txt, x.log"
    ]


@needs_git
def test_no_word_of_tracked_files_that_are_archived_or_without_git(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = _repository_with_tracked_ignored_files(tmp_path / "repo")
    # A pattern on the command line brings them back, as it overrides the tree's rules.
    assert main(["create", str(repository), "--gitignore", "--exclude", "!x.log",
                 "--exclude", "!build/", "--dry-run"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    monkeypatch.setattr("shutil.which", lambda name: None)  # no git installed
    assert main(["create", str(repository), "--gitignore", "--dry-run"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_no_word_outside_a_repository(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    build_layout(tmp_path / "tree", {".gitignore": "*.log\n", "x.log": "x"})
    assert main(["create", str(tmp_path / "tree"), "--gitignore", "--dry-run"]) == 0
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
