"""Configuration files, environment and flags: precedence, sources and errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from arcman import ArchiveManager
from arcman._cli import main
from arcman._settings import SettingsError, find_config_file, resolve, to_config


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_pyproject_table_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    conf = _write(tmp_path / "pyproject.toml", "[tool.arcman]\nlevel = 3\nthreads = 1\n")
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    settings = resolve(str(start), {}, environ={})
    assert settings["level"].value == 3
    assert settings["level"].source == str(conf)
    assert settings["format"].source == "default"


def test_pyproject_without_arcman_table_is_skipped(tmp_path: Path) -> None:
    outer = _write(tmp_path / "arcman.toml", "format = 'tar.xz'\n")
    _write(tmp_path / "proj" / "pyproject.toml", "[project]\nname = 'x'\n")
    found = find_config_file(str(tmp_path / "proj"))
    assert found is not None and found[0] == str(outer)


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    _write(tmp_path / "arcman.toml", "level = 3\nthreads = 1\nreproducible = true\n")
    env = {"ARCMAN_LEVEL": "5", "ARCMAN_THREADS": "1"}
    settings = resolve(str(tmp_path), {"level": 7}, environ=env)
    assert (settings["level"].value, settings["level"].source) == (7, "flag")
    assert (settings["threads"].value, settings["threads"].source) == (1, "$ARCMAN_THREADS")
    assert settings["reproducible"].value is True
    settings = resolve(str(tmp_path), {}, environ=env)
    assert (settings["level"].value, settings["level"].source) == (5, "$ARCMAN_LEVEL")


def test_limits_and_excludes_build_the_archive_config(tmp_path: Path) -> None:
    _write(
        tmp_path / "arcman.toml",
        "excludes = ['*.log']\n[limits]\nmax_members = 10\nmax_total_size = 0\n",
    )
    settings = resolve(
        str(tmp_path), {"excludes": [("*.tmp", "--exclude")]}, environ={"ARCMAN_EXCLUDES": "a:b"}
    )
    config = to_config(settings)
    assert config.limits.max_members == 10
    assert config.limits.max_total_size is None
    assert config.exclude_patterns == [".DS_Store", "Thumbs.db", "*.log", "a", "b", "*.tmp"]
    assert settings["excludes"].origins[-1] == "--exclude"


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    conf = _write(tmp_path / "arcman.toml", "level = 3\ncompression = 'fast'\n")
    with pytest.raises(SettingsError, match=f"'compression'.*{conf}"):
        resolve(str(tmp_path), {}, environ={})
    _write(tmp_path / "arcman.toml", "[limits]\nmax_bombs = 1\n")
    with pytest.raises(SettingsError, match=r"limits\.max_bombs"):
        resolve(str(tmp_path), {}, environ={})


@pytest.mark.parametrize(
    ("text", "env"),
    [("level = 'high'\n", {}), ("reproducible = 1\n", {}), ("format = 'rar'\n", {}),
     ("", {"ARCMAN_THREADS": "many"}), ("", {"ARCMAN_REPRODUCIBLE": "maybe"})],
)
def test_bad_values_are_settings_errors(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    _write(tmp_path / "arcman.toml", text)
    with pytest.raises(SettingsError, match="bad value"):
        resolve(str(tmp_path), {}, environ=env)


def test_config_command_shows_sources_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _write(tmp_path / "pyproject.toml", "[tool.arcman]\nlevel = 3\n")
    monkeypatch.setenv("ARCMAN_FORMAT", "zip")
    assert main(["config", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert any(line.startswith("level") and line.endswith(str(conf)) for line in text.splitlines())
    assert any(line.startswith("format") and "$ARCMAN_FORMAT" in line for line in text.splitlines())
    assert main(["config", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == {"value": "zip", "source": "$ARCMAN_FORMAT"}


def test_config_error_exits_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _write(tmp_path / "arcman.toml", "bogus = true\n")
    assert main(["config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and str(conf) in err and "Traceback" not in err


def test_create_uses_the_file_format_and_excludes(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARCMAN_FORMAT", raising=False)
    _write(sample_tree / "arcman.toml", "format = 'zip'\nexcludes = ['*.sh']\n")
    out = tmp_path / "out.bin"
    assert main(["create", str(sample_tree), "-o", str(out), "-q"]) == 0
    with ArchiveManager() as manager:
        names = {e.name for e in manager.list_archive(out)}
    assert "run.sh" not in names and "a.txt" in names
    assert out.read_bytes()[:2] == b"PK"


@pytest.mark.parametrize(
    ("text", "env", "key", "where"),
    [
        ("threads = -3\n", {}, "threads", "arcman.toml"),
        ("", {"ARCMAN_THREADS": "0"}, "threads", "$ARCMAN_THREADS"),
        ("[limits]\nmax_members = -1\n", {}, "limits.max_members", "arcman.toml"),
        ("[limits]\nmax_members = 2.5\n", {}, "limits.max_members", "arcman.toml"),
        ("", {"ARCMAN_LIMITS_MAX_MEMBERS": "2.5"}, "limits.max_members",
         "$ARCMAN_LIMITS_MAX_MEMBERS"),
        ("[limits]\nmax_compression_ratio = nan\n", {}, "limits.max_compression_ratio",
         "arcman.toml"),
        ("[limits]\nmax_compression_ratio = inf\n", {}, "limits.max_compression_ratio",
         "arcman.toml"),
        ("[limits]\nmax_total_size = -1\n", {}, "limits.max_total_size", "arcman.toml"),
        ("level = 99\n", {}, "level", "arcman.toml"),  # out of range for every format
    ],
)
def test_out_of_range_values_name_the_key_and_source(
    tmp_path: Path, text: str, env: dict[str, str], key: str, where: str
) -> None:
    _write(tmp_path / "arcman.toml", text)
    with pytest.raises(SettingsError, match=rf"bad value for '{key}' in \S*{re.escape(where)}"):
        resolve(str(tmp_path), {}, environ=env)


def test_level_valid_for_some_format_is_kept_until_the_format_is_known(tmp_path: Path) -> None:
    _write(tmp_path / "arcman.toml", "level = 12\n")  # zstd's, not gzip's
    assert resolve(str(tmp_path), {}, environ={})["level"].value == 12


@pytest.mark.parametrize(
    ("flags", "key"),
    [({"threads": 0}, "threads"), ({"limits.max_compression_ratio": float("nan")},
                                    "limits.max_compression_ratio"),
     ({"limits.max_members": -1}, "limits.max_members"), ({"level": 30}, "level")],
)
def test_bad_flags_name_the_key(tmp_path: Path, flags: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError, match=f"bad value for '{key}' on the command line"):
        resolve(str(tmp_path), flags, environ={})


def test_zero_is_no_limit_in_file_env_and_flag(tmp_path: Path) -> None:
    _write(tmp_path / "arcman.toml", "[limits]\nmax_members = 0\n")
    settings = resolve(
        str(tmp_path), {"limits.max_compression_ratio": 0.0},
        environ={"ARCMAN_LIMITS_MAX_TOTAL_SIZE": "0"},
    )
    limits = to_config(settings).limits
    assert limits.max_members is limits.max_total_size is limits.max_compression_ratio is None


def test_cli_nan_ratio_is_a_usage_error_not_an_unchecked_bomb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["verify", str(tmp_path / "any.zip"), "--max-ratio", "nan"]) == 2
    assert "max_compression_ratio" in capsys.readouterr().err
    _write(tmp_path / "arcman.toml", "[limits]\nmax_compression_ratio = nan\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(tmp_path / "arcman.toml") in captured.err


def test_config_file_that_is_not_utf8_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "arcman.toml"
    conf.write_bytes(b"level = 3\n# caf\xe9\n")
    assert main(["config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(conf) in err and "not UTF-8" in err and "codec" not in err


def test_config_of_a_missing_directory_is_a_source_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", str(tmp_path / "nosuchdir")]) == 4
    assert "nosuchdir" in capsys.readouterr().err


@pytest.mark.needs_zstd
def test_format_flag_contradicting_the_extension_is_a_usage_error(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(out), "--format", "zip"]) == 2
    err = capsys.readouterr().err
    assert "--format zip contradicts" in err and "tar.gz" in err
    assert not out.exists()
    agreeing = tmp_path / "x.zip"
    assert main(["create", str(sample_tree), "-o", str(agreeing), "--format", "zip", "-q"]) == 0
    unnamed = tmp_path / "x.bin"
    assert main(["create", str(sample_tree), "-o", str(unnamed), "--format", "tar.zst", "-q"]) == 0
    assert unnamed.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"


def test_env_or_file_format_yields_to_a_recognised_extension(
    tmp_path: Path, sample_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCMAN_FORMAT", "tar.zst")
    out = tmp_path / "y.zip"
    assert main(["create", str(sample_tree), "-o", str(out), "-q"]) == 0
    assert out.read_bytes()[:2] == b"PK"  # was zstd data named .zip
    monkeypatch.delenv("ARCMAN_FORMAT")
    _write(sample_tree / "arcman.toml", "format = 'zip'\n")
    gz = tmp_path / "y.tar.gz"
    assert main(["create", str(sample_tree), "-o", str(gz), "-q"]) == 0
    assert gz.read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.needs_zstd
def test_level_out_of_range_for_the_output_names_the_key_and_file(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _write(sample_tree / "arcman.toml", "level = 12\n")
    assert main(["create", str(sample_tree), "-o", str(tmp_path / "a.tar.zst"), "-q"]) == 0
    assert main(["create", str(sample_tree), "-o", str(tmp_path / "a.tar.gz")]) == 2
    err = capsys.readouterr().err
    assert f"bad value for 'level' in {conf}: 12 is out of range for tar.gz (1-9)" in err


@pytest.mark.needs_zstd
def test_level_is_checked_against_the_format_in_use_not_the_default_format(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A configured format is a default, used where the extension does not say: a level valid
    # for the output's format is fine, and verify (no format in use) is not refused.
    conf = _write(sample_tree / "arcman.toml", "format = 'tar.gz'\nlevel = 12\n")
    zst = tmp_path / "a.tar.zst"
    assert main(["create", str(sample_tree), "-o", str(zst), "-q"]) == 0
    monkeypatch.chdir(sample_tree)  # where verify and extract look for the configuration
    assert main(["verify", str(zst), "-q"]) == 0
    assert main(["extract", str(zst), "-C", str(tmp_path / "out"), "-q"]) == 0
    assert main(["create", str(sample_tree), "-o", str(tmp_path / "a.bin"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"bad value for 'level' in {conf}: 12 is out of range for tar.gz (1-9)" in err


def test_threads_shows_the_count_used_capped_at_the_cpus(tmp_path: Path) -> None:
    # ArchiveConfig caps thread_pool_size at the CPUs; `arcman config` showed the uncapped value.
    from arcman._config import available_cpus

    settings = resolve(str(tmp_path), {"threads": available_cpus() + 7}, environ={})
    assert settings["threads"].value == available_cpus()
    assert settings["threads"].source.startswith("flag")
    assert to_config(settings).thread_pool_size == settings["threads"].value
