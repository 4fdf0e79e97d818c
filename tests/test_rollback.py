"""Deploy with --keep-previous, undo with rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from arcman import ArchiveManager, DestinationError
from arcman._cli import main


def _release(tmp_path: Path, version: str) -> Path:
    tree = tmp_path / f"build-{version}"
    (tree / "bin").mkdir(parents=True)
    (tree / "VERSION").write_text(version)
    (tree / "bin" / f"only-in-{version}").write_text(version)
    archive = tmp_path / f"app-{version}.tar.zst"
    with ArchiveManager() as manager:
        manager.create_archive(tree, archive)
    return archive


def test_keep_previous_then_rollback_and_forward(tmp_path: Path) -> None:
    v1, v2, v3 = (_release(tmp_path, v) for v in ("v1", "v2", "v3"))
    dest = tmp_path / "opt" / "app"
    prev = tmp_path / "opt" / "app.prev"
    dest.parent.mkdir()
    assert main(["extract", str(v1), "-C", str(dest), "-q"]) == 0
    assert main(["extract", str(v2), "-C", str(dest), "--replace", "--keep-previous", "-q"]) == 0
    assert (dest / "VERSION").read_text() == "v2"
    assert (prev / "VERSION").read_text() == "v1"
    assert main(["rollback", str(dest), "-q"]) == 0
    assert (dest / "VERSION").read_text() == "v1"
    assert (prev / "VERSION").read_text() == "v2"
    assert not (dest / "bin" / "only-in-v2").exists()
    assert main(["rollback", str(dest), "-q"]) == 0  # and forward again
    assert (dest / "VERSION").read_text() == "v2"
    # A new deploy replaces the older .prev; nothing is left beside the destination.
    with ArchiveManager() as manager:
        manager.extract_archive(v3, dest, replace=True, keep_previous=True)
    assert (dest / "VERSION").read_text() == "v3"
    assert (prev / "VERSION").read_text() == "v2"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app", "app.prev"]


def test_replace_without_keep_previous_leaves_no_prev(tmp_path: Path) -> None:
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True)
    assert not (tmp_path / "app.prev").exists()


def test_failed_deploy_keeps_the_current_tree_and_prev(tmp_path: Path) -> None:
    v1, v2 = _release(tmp_path, "v1"), _release(tmp_path, "v2")
    dest = tmp_path / "app"
    with ArchiveManager() as manager:
        manager.extract_archive(v1, dest)
        manager.extract_archive(v2, dest, replace=True, keep_previous=True)
    bad = tmp_path / "bad.tar.zst"
    data = bytearray(v1.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    code = main(["extract", str(bad), "-C", str(dest), "--replace", "--keep-previous", "-q",
                 "--no-verify"])
    assert code in (1, 3)
    assert (dest / "VERSION").read_text() == "v2"
    assert (tmp_path / "app.prev" / "VERSION").read_text() == "v1"


def test_rollback_without_prev_is_a_destination_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(DestinationError, match=r"app\.prev"):
        ArchiveManager().rollback(tmp_path / "app")
    assert main(["rollback", str(tmp_path / "app")]) == 5
    assert "cannot roll back" in capsys.readouterr().err


def test_keep_previous_needs_replace(tmp_path: Path) -> None:
    v1 = _release(tmp_path, "v1")
    assert main(["extract", str(v1), "-C", str(tmp_path / "x"), "--keep-previous"]) == 2
