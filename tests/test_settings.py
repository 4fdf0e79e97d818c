"""Configuration files, environment and flags: precedence, sources and errors."""

from __future__ import annotations

import json
from pathlib import Path

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
