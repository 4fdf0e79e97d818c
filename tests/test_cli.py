"""The command line, run as users run it: exit codes, one JSON object, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from arcman import ArchiveManager, CorruptArchiveError
from arcman._cli import main
from helpers import snapshot, tar_file, write_tar


def arcman(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arcman", *map(str, args)], capture_output=True, text=True
    )


def one_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def assert_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("arcman: ") or code == 2
    return lines[0]


@pytest.fixture
def archive(tmp_path: Path, sample_tree: Path) -> Path:
    out = tmp_path / "app.tar.gz"
    proc = arcman("create", sample_tree, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    return out


def test_create_verify_list_extract_with_json(tmp_path: Path, sample_tree: Path) -> None:
    out = tmp_path / "app.zip"
    created = one_json(arcman("create", sample_tree, "-o", out, "--json", "--threads", "2"))
    assert created["format"] == "zip" and created["file_count"] == 4
    assert created["stats"]["operations"] == {"create": 1}

    verified = one_json(arcman("verify", out, "--json"))
    assert verified["verification"] == "manifest"

    listed = one_json(arcman("list", out, "--json"))
    assert {e["name"] for e in listed["entries"]} == set(created["files"])

    extracted = one_json(arcman("extract", out, "-C", tmp_path / "dest", "--json"))
    assert extracted["verification"] == "manifest"
    assert snapshot(tmp_path / "dest") == snapshot(sample_tree)


@pytest.mark.needs_zstd
def test_human_output(tmp_path: Path, sample_tree: Path) -> None:
    out = tmp_path / "app.tar.zst"
    proc = arcman("create", sample_tree, "-o", out, "--no-parallel", "--level", "19",
                  "--exclude", "*.sh")
    assert proc.returncode == 0 and proc.stdout.startswith("created ")
    proc = arcman("verify", out)
    assert proc.returncode == 0 and "OK" in proc.stdout
    proc = arcman("list", "-l", out)
    assert proc.returncode == 0
    assert "run.sh" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert any(line.startswith("file") and line.endswith(" a.txt") for line in lines)
    proc = arcman("extract", out, "-C", tmp_path / "dest")
    assert proc.returncode == 0 and "verified by manifest" in proc.stdout


def test_destination_not_empty_is_5_unless_replace(tmp_path: Path, archive: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "old").write_text("old")
    line = assert_error(arcman("extract", archive, "-C", dest), 5)
    assert "not empty" in line
    assert [p.name for p in dest.iterdir()] == ["old"]
    assert arcman("extract", archive, "-C", dest, "--replace", "-q").returncode == 0
    assert not (dest / "old").exists() and (dest / "a.txt").exists()


def test_tampered_sidecar_is_1(tmp_path: Path, archive: Path) -> None:
    Path(f"{archive}.sha256").write_text("f" * 64 + "  app.tar.gz\n")
    assert_error(arcman("verify", archive), 1)
    assert_error(arcman("extract", archive, "-C", tmp_path / "dest"), 1)
    assert not (tmp_path / "dest").exists()


def test_corrupt_archive_is_3(tmp_path: Path, archive: Path) -> None:
    Path(f"{archive}.sha256").unlink()
    archive.write_bytes(archive.read_bytes()[:-200])
    assert_error(arcman("verify", archive, "--json"), 3)


@pytest.mark.parametrize("size", [512, 10240, 1 << 20])
def test_empty_or_zeroed_tar_is_3(tmp_path: Path, size: int) -> None:
    """`tar cf x.tar -T /dev/null` (10,240 zero bytes), or a zeroed download: exit 3 with a
    reason, not 2 ("not an archive arcman recognizes", a usage error)."""
    empty = tmp_path / "empty.tar"
    empty.write_bytes(bytes(size))
    for command in (["verify", empty], ["list", empty], ["extract", empty, "-C", tmp_path / "d"]):
        assert "zeros" in assert_error(arcman(*command), 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tar"]


@pytest.mark.parametrize("size", [262, 511])
def test_a_tar_cut_short_within_its_first_header_is_3(tmp_path: Path, size: int) -> None:
    """Its magic is there but not the whole header: a truncated download, exit 3 as any other
    truncated archive, not 2 ("not an archive arcman recognizes")."""
    whole = write_tar(tmp_path / "whole.tar", [tar_file("a.txt")]).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:size])
    assert "cut short" in assert_error(arcman("verify", cut), 3)
    with cut.open("rb") as stream, pytest.raises(CorruptArchiveError, match="cut short"), \
            ArchiveManager() as manager:
        manager.verify_archive_integrity(stream)


def test_unsafe_archive_is_3(tmp_path: Path) -> None:
    evil = write_tar(tmp_path / "evil.tar", [tar_file("../escape")])
    line = assert_error(arcman("extract", evil, "-C", tmp_path / "dest"), 3)
    assert "../escape" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar"]


def test_missing_source_is_4(tmp_path: Path) -> None:
    assert_error(arcman("create", tmp_path / "missing", "-o", tmp_path / "a.tar"), 4)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "unreadable"])
def test_archive_that_cannot_be_read_is_4(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source problem, not a usage error (2): the archive is named right but not readable."""
    path = tmp_path / "x.tar.gz"
    if kind == "directory":
        path.mkdir()
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads a mode-000 file")
        path.write_bytes(b"\x1f\x8b")
        path.chmod(0)
    for args in (["verify", str(path)], ["list", str(path)],
                 ["extract", str(path), "-C", str(tmp_path / "out")],
                 ["diff", str(path), str(tmp_path)]):
        assert main(args) == 4, args
        assert "cannot read" in capsys.readouterr().err


def test_skipped_files_are_6_and_reported(tmp_path: Path, sample_tree: Path) -> None:
    proc = arcman("create", sample_tree, "-o", tmp_path / "a.tar", "--max-file-size", "100",
                  "--skip-unreadable", "--json")
    assert proc.returncode == 6
    assert "sub/big.bin" in proc.stderr and "Traceback" not in proc.stderr
    assert one_json(proc)["skipped"][0].startswith("sub/big.bin")


@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["default", "quiet"])
def test_each_skip_is_reported_once_on_stderr(
    tmp_path: Path, sample_tree: Path, quiet: list[str]
) -> None:
    proc = arcman("create", sample_tree, "-o", tmp_path / "a.tar", "--max-file-size", "100",
                  "--skip-unreadable", *quiet)
    assert proc.returncode == 6
    assert proc.stderr.count("sub/big.bin") == 1


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["create"],
        ["create", "SRC"],
        ["frobnicate"],
        ["create", "SRC", "-o", "OUT.tar", "--level", "x"],
        ["create", "SRC", "-o", "OUT.rar"],
        ["create", "SRC", "-o", "OUT.tar.gz", "--level", "99"],
        ["create", "SRC", "-o", "OUT.tar", "--threads", "0"],
        ["extract", "ARCHIVE"],
        ["verify", "--bogus", "ARCHIVE"],
        # Options that would do nothing there: rollback and config run no archive operation.
        ["rollback", "DEST", "--stats"],
        ["rollback", "DEST", "--threads", "2"],
        ["config", "--no-parallel"],
    ],
)
def test_usage_errors_are_2(tmp_path: Path, sample_tree: Path, argv: list[str]) -> None:
    argv = [
        str(sample_tree) if a == "SRC" else str(tmp_path / a[3:]) if a.startswith("OUT") else a
        for a in argv
    ]
    proc = arcman(*argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_version() -> None:
    proc = arcman("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("arcman ")


@pytest.mark.parametrize("excludes", [1, 20_000], ids=["flushed-at-exit", "written-at-once"])
def test_reader_closing_the_pipe_exits_141_quietly(tmp_path: Path, excludes: int) -> None:
    """`arcman config | head -1`: whether the write or the final flush meets the closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {**os.environ, "ARCMAN_EXCLUDES": ":".join(f"p{n}" for n in range(excludes))}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "arcman", "config", str(tmp_path)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


def test_list_prints_a_name_that_is_not_utf8_as_its_bytes(tmp_path: Path) -> None:
    """As tar tf does, in a strict UTF-8 locale too (PYTHONIOENCODING=utf-8 is one)."""

    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9.txt")
        tar.addfile(info)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    for flags in ([], ["-l"]):
        proc = subprocess.run(
            [sys.executable, "-m", "arcman", "list", str(archive), *flags],
            capture_output=True, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.rstrip(b"\n").endswith(b"caf\xe9.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to warn about")
def test_a_warning_names_a_file_that_is_not_utf8_by_its_bytes(tmp_path: Path) -> None:
    """As ls shows it, not as Python's surrogate escape (caf\\udce9)."""
    source = tmp_path / "src"
    source.mkdir()
    os.mkfifo(os.path.join(os.fsencode(source), b"caf\xe9"))  # skipped, with a warning
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    proc = subprocess.run(
        [sys.executable, "-m", "arcman", "create", str(source), "-o", str(tmp_path / "a.tar"),
         "--skip-unreadable"],
        capture_output=True, env=env,
    )
    assert proc.returncode == 6, proc.stderr  # files skipped
    assert b"skipped caf\xe9: special file" in proc.stderr


def test_quiet_keeps_a_stats_table_asked_for(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(archive), "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["verify", str(archive), "-q", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "wall time" in out and "OK" not in out  # the table, without the result line


def test_create_to_standard_output_closed_early_exits_141_quietly(sample_tree: Path) -> None:
    """It printed "cannot write <stdout>: Broken pipe" and exited 5."""
    (sample_tree / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "arcman", "create", str(sample_tree), "-o", "-", "--format",
             "tar.gz", "-q"], stdout=write_end, stderr=subprocess.PIPE, text=True, check=False,
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to warn about")
@pytest.mark.parametrize("quiet", [[], ["-q"]], ids=["logged", "quiet"])
def test_a_name_with_a_newline_cannot_forge_a_line_of_the_report(
    tmp_path: Path, quiet: list[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    os.mkfifo(source / "evil\narcman: error: forged")
    proc = subprocess.run(
        [sys.executable, "-m", "arcman", "create", str(source), "-o", str(tmp_path / "a.tar"),
         "--skip-unreadable", *quiet], capture_output=True, text=True,
    )
    assert proc.returncode == 6, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert len(warnings) == 1 and "evil\\x0aarcman: error: forged: special file" in warnings[0]
    assert "arcman: error: forged" not in proc.stderr.replace("\\x0aarcman: error: forged", "")


def test_list_diff_and_dry_run_escape_control_characters_in_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name holding a newline or an escape sequence is one line of `list`/`diff`/a dry run,
    shown as GNU tar shows it escaped, not a forged second line or a terminal command;
    --json keeps the name as it is (JSON escapes it)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "a\nforged").write_text("x")
    (source / "b\x1b[2Jclear").write_text("y")
    (source / "c\nleft-out").write_text("z")
    assert main(["create", str(source), "--dry-run", "--exclude", "c*"]) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "+ a\\x0aforged", "+ b\\x1b[2Jclear", "- c\\x0aleft-out  (pattern 'c*' from --exclude)"
    ]
    (source / "c\nleft-out").unlink()
    archive = tmp_path / "a.tar.gz"
    assert main(["create", str(source), "-o", str(archive), "-q"]) == 0
    capsys.readouterr()
    for long in ([], ["-l"]):
        assert main(["list", str(archive), *long]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 2
        assert lines[0].endswith("a\\x0aforged") and lines[1].endswith("b\\x1b[2Jclear")
    assert main(["list", str(archive), "--json"]) == 0
    names = [e["name"] for e in json.loads(capsys.readouterr().out)["entries"]]
    assert names == ["a\nforged", "b\x1b[2Jclear"]
    (source / "a\nforged").unlink()
    assert main(["diff", str(archive), str(source)]) == 1
    assert capsys.readouterr().out.splitlines() == ["- a\\x0aforged"]


def test_an_error_message_is_one_line_whatever_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """arcman's own messages quote names with repr(); one from a library or the OS might not,
    and its newline must not forge a second line of the report."""
    from arcman import CorruptArchiveError, _manager

    def broken(*args: object, **kwargs: object) -> None:
        raise CorruptArchiveError("bad member x\narcman: forged")

    monkeypatch.setattr(_manager.ArchiveManager, "verify_archive", broken)
    assert main(["verify", str(tmp_path / "a.tar")]) == 3
    assert capsys.readouterr().err == "arcman: error: bad member x\\x0aarcman: forged\n"
