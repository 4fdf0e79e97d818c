"""A user's script type-checks against the public API as it is (py.typed, __all__)."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")


def test_a_misspelled_public_name_fails_type_checking(tmp_path: Path) -> None:
    """The lazy module __getattr__ told mypy that every name of arcman exists (as Any): a
    typo passed ``mypy --strict`` and left everything that used it unchecked."""
    script = tmp_path / "script.py"
    script.write_text(
        "import arcman\n"
        "from arcman import ArchiveManager, ArchiveManger\n"
        "ArchiveManager().create_archive('src', 'out.tar.gz')\n"
        "arcman.ArchivConfig()\n"
    )
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir=/dev/null", str(script)]
    )
    assert status == 1, out
    assert 'has no attribute "ArchiveManger"' in out
    assert 'has no attribute "ArchivConfig"' in out
    assert out.count("error:") == 2, out
