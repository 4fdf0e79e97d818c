from __future__ import annotations

import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import FAST_LIBS, installed


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-stress", action="store_true", help="run the long stress tests")
    parser.addoption(
        "--without-fast-libs", action="store_true",
        help="run as on 32-bit ARM: every import of isal, zlib_ng and pyzstd fails",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--without-fast-libs"):
        return
    # Before any test module is imported, so nothing holds one of them already; and in the
    # interpreters that tests start (`python -m arcman ...`), through a sitecustomize.
    blocking = f"import sys; sys.modules.update(dict.fromkeys({FAST_LIBS!r}))\n"
    sys.modules.update(dict.fromkeys(FAST_LIBS))
    site = Path(tempfile.mkdtemp(prefix="arcman-without-fast-libs-"))
    (site / "sitecustomize.py").write_text(blocking)
    config.add_cleanup(functools.partial(shutil.rmtree, site))
    paths = [str(site), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)


def _uses_zstd(item: pytest.Item) -> bool:
    """Marked ``needs_zstd``, or given .tar.zst as its ``ext`` or ``fmt`` parameter."""
    if item.get_closest_marker("needs_zstd") is not None:
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    formats = (params.get("ext"), params.get("fmt"))
    return any(isinstance(value, str) and value.endswith("zst") for value in formats)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stress = pytest.mark.skip(reason="long stress test: run with `make stress`")
    missing = [name for name in FAST_LIBS if not installed(name)]
    no_zstd = pytest.mark.skip(reason="needs pyzstd for .tar.zst, not installed here")
    no_fast = pytest.mark.skip(reason=f"needs {', '.join(missing)}, not installed here")
    for item in items:
        if "stress" in item.keywords and not config.getoption("--run-stress"):
            item.add_marker(stress)
        if "pyzstd" in missing and _uses_zstd(item):
            item.add_marker(no_zstd)
        if missing and item.get_closest_marker("needs_fast_libs") is not None:
            item.add_marker(no_fast)


@pytest.fixture
def sample_tree(tmp_path: Path) -> Path:
    """A small tree with the member kinds arcman stores: files, dirs, empty dirs, a symlink."""
    root = tmp_path / "src"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("hello\n")
    (root / "sub" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "sub" / "deep" / "zero").write_bytes(b"")
    run = root / "run.sh"
    run.write_text("#!/bin/sh\necho hi\n")
    run.chmod(0o755)
    (root / "link").symlink_to("a.txt")
    return root


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make opening one path fail with EACCES (chmod cannot stop root, which runs the tests)."""
    real_open = os.open
    denied: set[str] = set()

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) in denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("arcman._create.read.os.open", guarded_open)
    yield lambda p: denied.add(os.path.realpath(p))


@pytest.fixture
def after_collection(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], None]], None]:
    """Run an action between collection and reading (a file changing under arcman's feet)."""
    # Imported here: conftest is imported before pytest_configure blocks the fast libraries.
    from arcman._create import collect

    def install(action: Callable[[], None]) -> None:
        real = collect.Collector.walk

        def walk_then_act(self: collect.Collector) -> Iterator[collect.SourceEntry]:
            entries = list(real(self))
            action()
            yield from entries

        monkeypatch.setattr(collect.Collector, "walk", walk_then_act)

    return install
