"""The README's examples and figures against the code, so the two cannot drift apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from arcman import ArchiveManager, CompressionFormat
from arcman._cli import main
from arcman._settings import resolve

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_config_example_shows_the_real_defaults(tmp_path: Path) -> None:
    defaults = resolve(str(tmp_path), {}, environ={})
    shown = re.findall(r"^(limits\.\w+|format|reproducible)\s+(\S+)\s+default$", README, re.M)
    assert len(shown) >= 5
    for key, value in shown:
        assert json.loads(value) == defaults[key].value, key


@pytest.mark.needs_zstd
def test_stats_example_lists_the_phases_verify_reports(
    tmp_path: Path, sample_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "a.tar.zst"
    with ArchiveManager() as manager:
        manager.create_archive(sample_tree, archive)
    assert main(["verify", str(archive), "--stats"]) == 0
    real = re.findall(r"^│   (\w+) ", capsys.readouterr().out, re.M)
    example = README[README.index("--stats\n"):]
    shown = re.findall(r"^│   (\w+) ", example[: example.index("└")], re.M)
    assert shown == real


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("gzip", CompressionFormat.TAR_GZ), ("zip", CompressionFormat.ZIP),
     ("zstd", CompressionFormat.TAR_ZST), ("bzip2", CompressionFormat.TAR_BZ2),
     ("xz", CompressionFormat.TAR_XZ)],
)
def test_level_ranges_match_the_formats(name: str, fmt: CompressionFormat) -> None:
    levels = README[README.index("## Compression levels"):]
    found = re.search(rf"\b{name} (\d+)-(\d+)", levels)
    assert found is not None, name
    assert (int(found[1]), int(found[2])) == fmt.level_range
