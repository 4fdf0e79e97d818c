"""CLI user experience: progress bar, excludes and --dry-run, --stats, --json, help, completion."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from arcman import ArchiveConfig, ArchiveManager
from arcman._cli import build_parser, main
from arcman._gitignore import gitignore_patterns
from arcman._progress_bar import progress_bar
from helpers import snapshot


def _arcman(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcman", *args], capture_output=True, text=True, cwd=cwd,
        check=False,
    )


def test_no_progress_output_when_stderr_is_not_a_terminal(
    tmp_path: Path, sample_tree: Path
) -> None:
    archive = tmp_path / "a.tar.gz"
    for args in (["create", str(sample_tree), "-o", str(archive)], ["verify", str(archive)],
                 ["extract", str(archive), "-C", str(tmp_path / "out")]):
        result = _arcman(*args)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""


@pytest.mark.needs_zstd
def test_progress_bar_renders_bytes_and_rate_on_a_terminal(
    tmp_path: Path, sample_tree: Path
) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with progress_bar("archiving", sys.stderr, enabled=True, console=console) as callbacks:
        assert callbacks is not None
        on_bytes, on_item = callbacks
        config = ArchiveConfig(progress_callback=on_bytes, progress_item_callback=on_item)
        with ArchiveManager(config) as manager:
            manager.create_archive(sample_tree, tmp_path / "a.tar.zst")
    text = buffer.getvalue()
    assert "archiving" in text
    assert "3.0/3.0 MiB" in text  # the sample tree's 3 MiB, complete
    assert "/s" in text  # throughput column
    assert "sub/deep/zero" in text  # the member reached last


def test_progress_bar_is_off_with_quiet_or_without_a_terminal() -> None:
    with progress_bar("x", io.StringIO(), enabled=True) as callback:
        assert callback is None  # StringIO is not a TTY
    console = Console(file=io.StringIO(), force_terminal=True)
    with progress_bar("x", sys.stderr, enabled=False, console=console) as callback:
        assert callback is None


def _tree(root: Path) -> Path:
    (root / "sub" / "only").mkdir(parents=True)
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("o")
    (root / "a.txt").write_text("a")
    (root / "a.pyc").write_text("c")
    (root / "sub" / "x.log").write_text("l")
    (root / "sub" / "keep").write_text("k")
    (root / "sub" / "only" / "f").write_text("f")
    (root / "sub" / "deeper").mkdir()
    (root / "sub" / "deeper" / "y.log").write_text("l")
    (root / "sub" / "deeper" / "only").write_text("anchored pattern must not match this")
    (root / ".gitignore").write_text("# build output\nbuild/\n")
    (root / "sub" / ".gitignore").write_text("*.log\n/only\n")
    return root


def test_gitignore_patterns_apply_relative_to_their_directory(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    patterns = gitignore_patterns(str(root))
    assert [p for p, _ in patterns] == [".git", "build/", "sub/**/*.log", "sub/only"]
    assert patterns[2][1].endswith("sub/.gitignore:1")


def test_dry_run_lists_contents_and_reasons_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _tree(tmp_path / "t")
    patterns = tmp_path / "patterns"
    patterns.write_text("*.pyc\n")
    code = main(["create", str(root), "--dry-run", "--gitignore",
                 "--exclude-from", str(patterns), "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    included = {e["path"] for e in plan["included"]}
    assert included == {".gitignore", "a.txt", "sub", "sub/.gitignore", "sub/keep",
                        "sub/deeper", "sub/deeper/only"}
    reasons = {e["path"]: e["reason"] for e in plan["excluded"]}
    assert reasons.keys() == {"a.pyc", "build", "sub/only", "sub/x.log", "sub/deeper/y.log"}
    assert "'build/'" in reasons["build"] and ".gitignore:2" in reasons["build"]
    assert f"{patterns}:1" in reasons["a.pyc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patterns", "t"]

    assert main(["create", str(root), "--dry-run", "--exclude", "*.txt"]) == 0
    text = capsys.readouterr().out
    assert "- a.txt  (pattern '*.txt' from --exclude)" in text
    assert "+ build/out.o" in text


def test_gitignore_create_leaves_ignored_files_out(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t")
    archive = tmp_path / "a.tar"
    assert main(["create", str(root), "-o", str(archive), "--gitignore", "-q"]) == 0
    with ArchiveManager() as manager:
        names = {e.name for e in manager.list_archive(archive)}
    assert "build/out.o" not in names and "sub/x.log" not in names and "sub/keep" in names


def test_exclude_from_missing_file_is_a_source_error(tmp_path: Path) -> None:
    result = _arcman("create", str(tmp_path), "--dry-run", "--exclude-from", "/nonexistent")
    assert result.returncode == 4
    assert "cannot read pattern file" in result.stderr


def test_stats_prints_a_table(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create", str(sample_tree), "-o", str(tmp_path / "a.zip"), "--stats"]) == 0
    out = capsys.readouterr().out
    assert "arcman statistics" in out
    size = sum(p.stat().st_size for p in sample_tree.rglob("*") if p.is_file() and
               not p.is_symlink())
    assert any("bytes_in" in line and str(size) in line for line in out.splitlines())


def test_json_is_exactly_one_object_for_every_command(tmp_path: Path, sample_tree: Path) -> None:
    archive = tmp_path / "a.tar.xz"
    dest = tmp_path / "dest"
    commands = [
        ["create", str(sample_tree), "-o", str(archive)],
        ["create", str(sample_tree), "--dry-run"],
        ["verify", str(archive)],
        ["list", str(archive)],
        ["extract", str(archive), "-C", str(dest)],
        ["diff", str(archive), str(dest)],
        ["extract", str(archive), "-C", str(dest), "--replace", "--keep-previous"],
        ["rollback", str(dest)],
        ["config", str(sample_tree)],
    ]
    for args in commands:
        result = _arcman(*args, "--json")
        assert result.returncode == 0, (args, result.stderr)
        assert isinstance(json.loads(result.stdout), dict), args
        assert result.stdout.count("\n") == 1, args


def test_every_command_has_help_with_examples() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {"create", "extract", "verify", "list", "diff", "rollback",
                             "config", "completion"}
    for name, sub in commands.items():
        assert f"arcman {name}" in sub.format_help().split("examples:")[1], name


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_names_the_commands(shell: str) -> None:
    result = _arcman("completion", shell)
    assert result.returncode == 0, result.stderr
    assert "rollback" in result.stdout and "--keep-previous" in result.stdout


_COMPLETE = """source "$1"
complete_line() {
  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
  _shtab_arcman arcman "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
  echo "${COMPREPLY[*]}"
}
shift
complete_line "$@"
"""


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [(["verify", "pkg"], "pkg.tar.zst"), (["extract", "pkg.tar.zst", "-C", "dep"], "deployed"),
     (["create", "sr"], "src"), (["create", "src", "-o", "pkg"], "pkg.tar.zst"),
     (["rollback", "dep"], "deployed"), (["diff", "pkg.tar.zst", "dep"], "deployed")],
)
def test_bash_completion_completes_paths(
    tmp_path: Path, words: list[str], expected: str
) -> None:
    (tmp_path / "pkg.tar.zst").write_bytes(b"")
    (tmp_path / "deployed").mkdir()
    (tmp_path / "src").mkdir()
    script = tmp_path / "arcman.bash"
    script.write_text(_arcman("completion", "bash").stdout)
    result = subprocess.run(["bash", "-c", _COMPLETE, "-", str(script), "arcman", *words],
                            capture_output=True, text=True, cwd=tmp_path, check=True)
    assert expected in result.stdout.split(), result.stdout


def _loaded_after(code: str, modules: tuple[str, ...], cwd: Path | None = None) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    code += (f"\nimport sys\nloaded = sorted(m for m in {modules!r} if m in sys.modules)"
             "\nimport json\nprint(json.dumps(loaded))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=cwd, check=True)
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_version_does_not_import_rich_or_pathspec() -> None:
    code = ("import contextlib\nfrom arcman._cli import main\n"
            "with contextlib.suppress(SystemExit):\n    main(['--version'])")
    mods = ("rich", "pathspec", "tomllib", "shtab", "typing", "logging", "json", "dataclasses")
    # What argparse's own --version loads is not arcman's to save (3.14's loads dataclasses,
    # for its colours).
    bare = ("import argparse\nimport contextlib\nparser = argparse.ArgumentParser()\n"
            "parser.add_argument('--version', action='version', version='1')\n"
            "with contextlib.suppress(SystemExit):\n    parser.parse_args(['--version'])")
    argparse_loads = _loaded_after(bare, mods)
    assert [m for m in _loaded_after(code, mods) if m not in argparse_loads] == []


# Each is imported where it is needed (see the comment at its import): a tar.gz run needs none.
# (shutil, bz2 and lzma are not among them: tarfile and tempfile import all three.)
_ONLY_WHEN_NEEDED = (
    "zipfile", "tomllib", "ctypes", "secrets", "rich", "pathspec", "shtab", "datetime"
)


@pytest.mark.parametrize("command", ["create", "verify", "extract", "extract-replace"])
def test_a_tar_gz_run_does_not_import_what_it_does_not_need(
    sample_tree: Path, tmp_path: Path, command: str
) -> None:
    archive = tmp_path / "a.tar.gz"
    ArchiveManager().create_archive(sample_tree, archive)
    ArchiveManager().extract_archive(archive, tmp_path / "old")
    argv = {
        "create": ["create", str(sample_tree), "-o", str(tmp_path / "b.tar.gz")],
        "verify": ["verify", str(archive)],
        "extract": ["extract", str(archive), "-C", str(tmp_path / "new")],
        "extract-replace": ["extract", str(archive), "-C", str(tmp_path / "old"), "--replace"],
    }[command]
    code = f"from arcman._cli import main\nassert main({[*argv, '-q']!r}) == 0"
    # syncfs writes the staged tree out before its commit; renameat2 swaps the trees.
    expected = ["ctypes"] if command.startswith("extract") and sys.platform == "linux" else []
    assert _loaded_after(code, _ONLY_WHEN_NEEDED, cwd=tmp_path) == expected


def test_progress_bar_draws_member_names_as_text(tmp_path: Path) -> None:
    """A name is data: "sub[/]x" is not rich markup (it made the bar, and the run, fail)."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with progress_bar("archiving", sys.stderr, enabled=True, console=console) as callbacks:
        assert callbacks is not None
        on_bytes, on_item = callbacks
        on_item("sub[/]x")
        on_item("[bold red]z")
        on_bytes(1, 2)
    assert "[bold red]z" in buffer.getvalue()


@pytest.mark.parametrize("closed", [1, 2], ids=["stdout", "stderr"])
def test_a_closed_stdout_or_stderr_does_not_fail_the_run(
    tmp_path: Path, sample_tree: Path, closed: int
) -> None:
    """`arcman ... >&-`: what would go there is dropped; the archive is made, exit 0."""
    archive = tmp_path / "a.tar.gz"
    for argv in (["create", str(sample_tree), "-o", str(archive)], ["verify", str(archive)],
                 ["list", str(archive)]):
        proc = subprocess.run(
            [sys.executable, "-m", "arcman", *argv], preexec_fn=lambda: os.close(closed),
            stdout=subprocess.PIPE if closed == 2 else None,
            stderr=subprocess.PIPE if closed == 1 else None,
        )
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    assert archive.exists()


@pytest.fixture
def sample_archive(tmp_path: Path, sample_tree: Path) -> Path:
    archive = tmp_path / "a.tar.gz"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    return archive


def test_extract_into_the_working_directory(
    tmp_path: Path, sample_tree: Path, sample_archive: Path
) -> None:
    """`-C .`: the commit replaces the working directory's path; the run still ends well."""
    archive = sample_archive
    here = tmp_path / "here"
    here.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "arcman", "extract", os.path.relpath(archive, here), "-C", "."],
        cwd=here, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert snapshot(here) == snapshot(sample_tree)


def test_destination_that_is_a_symlink_is_refused_with_the_reason(
    tmp_path: Path, sample_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    assert main(["extract", str(sample_archive), "-C", str(tmp_path / "link")]) == 5
    assert "is a symlink (to 'real')" in capsys.readouterr().err


def test_extract_no_verify_does_not_say_verified(
    tmp_path: Path, sample_archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    assert main(["extract", str(sample_archive), "-C", str(dest), "--no-verify"]) == 0
    out = capsys.readouterr().out
    assert "verified by" not in out and "not verified (--no-verify)" in out


def test_ctrl_c_while_the_cli_loads_is_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `arcman` script's entry point imports the CLI itself, so that Ctrl-C in that
    window (~20 ms of imports) ends as an interrupted command: it printed a traceback."""
    import importlib.abc

    from arcman.__main__ import run

    class Interrupting(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *args: object) -> None:
            if name == "arcman._cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "arcman._cli")
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert run() == 130
    assert capsys.readouterr().err == "arcman: interrupted\n"


def test_ctrl_c_while_the_cli_sets_up_logging_is_130_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between parsing the arguments and running the command main() imports logging (~5 ms):
    Ctrl-C there printed a traceback (19 of 150 signals sent in a command's first 60 ms)."""
    import logging

    def interrupted(**kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(logging, "basicConfig", interrupted)
    (tmp_path / "src").mkdir()
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(tmp_path / "src"), "-o", str(archive)]) == 130
    assert capsys.readouterr().err == "arcman: interrupted\n"
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_an_unexpected_exception_is_exit_70_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug is reported as one line and exit 70; its traceback is logged at debug level
    (shown by -vv) for a bug report."""
    import logging

    import arcman._cli

    caplog.set_level(logging.DEBUG, logger="arcman")

    def broken(args: object) -> int:
        raise RuntimeError("boom\nforged line")

    monkeypatch.setattr(arcman._cli, "_run", broken)
    (tmp_path / "src").mkdir()
    argv = ["create", str(tmp_path / "src"), "-o", str(tmp_path / "a.tar.gz")]
    assert main(argv) == 70
    assert capsys.readouterr().err == "arcman: internal error: RuntimeError: boom\\x0aforged line\n"
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]


def test_one_file_is_counted_as_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "only").write_text("x")
    archive = str(tmp_path / "one.tar.gz")
    assert main(["create", str(tmp_path / "src"), "-o", archive, "--dry-run"]) == 0
    assert main(["create", str(tmp_path / "src"), "-o", archive]) == 0
    assert main(["verify", archive]) == 0
    assert main(["extract", archive, "-C", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "would archive 1 file (1 B)" in out
    assert f"created {archive}: 1 file, 1 B -> " in out
    assert f"{archive}: OK, 1 file; " in out
    assert "extracted 1 file (1 B) to " in out
    assert "1 files" not in out
