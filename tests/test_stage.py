"""StagingTree: extracted modes are the archive's (made safe), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from arcman import ArchiveManager
from arcman._extract.stage import current_umask


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


@pytest.mark.skipif(current_umask() is None, reason="no Umask line in /proc/self/status")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000, 0o027], indirect=True)
def test_the_umask_is_read_without_changing_it(umask: int) -> None:
    assert current_umask() == umask
    assert os.umask(umask) == umask  # unchanged by the read


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o137], indirect=True)
def test_modes_do_not_depend_on_the_umask(tmp_path: Path, umask: int) -> None:
    src = tmp_path / "src"
    src.mkdir()
    modes = {"plain": 0o644, "private": 0o600, "tool": 0o755, "odd": 0o640, "shared": 0o664}
    for name, mode in modes.items():
        for size, suffix in ((10, ""), (2 * 1024 * 1024, ".big")):  # written whole, streamed
            path = src / (name + suffix)
            path.write_bytes(b"x" * size)
            path.chmod(mode)
    os.umask(0o022)
    with ArchiveManager() as manager:
        manager.create_archive(src, tmp_path / "a.tar.gz")
    os.umask(umask)
    with ArchiveManager() as manager:
        manager.extract_archive(tmp_path / "a.tar.gz", tmp_path / "out")
    for name, mode in modes.items():
        for suffix in ("", ".big"):
            got = stat.S_IMODE((tmp_path / "out" / (name + suffix)).stat().st_mode)
            assert got == mode & 0o755, (name + suffix, oct(got))  # group/other write dropped
