"""Shared test helpers: tree snapshots, hostile-archive builders and tool detection."""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from arcman import CompressionFormat
from arcman._create.collect import Collector
from arcman._gitignore import gitignore_patterns

FORMATS = [fmt.extensions[0] for fmt in CompressionFormat]
TAR_FORMATS = [ext for ext in FORMATS if ext != ".zip"]
MANIFEST = ".arcman-manifest.jsonl"
BENCH = Path(__file__).resolve().parents[1] / "bench"
# The compression libraries that 32-bit ARM installs without (see arcman._backends).
FAST_LIBS = ("isal", "zlib_ng", "pyzstd")

Snapshot = dict[str, tuple[object, ...]]


def snapshot(root: Path, *, mtimes: bool = True, skip: frozenset[str] = frozenset()) -> Snapshot:
    """Every entry under ``root`` (not root itself) with its kind, content, mode and mtime."""
    result: Snapshot = {}

    def walk(directory: Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            for entry in it:
                rel = prefix + entry.name
                if rel in skip:
                    continue
                st = entry.stat(follow_symlinks=False)
                mtime = int(st.st_mtime) if mtimes else None
                if stat.S_ISLNK(st.st_mode):
                    result[rel] = ("symlink", os.readlink(entry.path))
                elif stat.S_ISDIR(st.st_mode):
                    result[rel] = ("dir", stat.S_IMODE(st.st_mode), mtime)
                    walk(Path(entry.path), rel + "/")
                else:
                    data = Path(entry.path).read_bytes()
                    result[rel] = ("file", data, stat.S_IMODE(st.st_mode), mtime)

    walk(root, "")
    return result


def listing(root: Path) -> list[str]:
    """Names of everything directly in ``root`` (to prove a failed operation wrote nothing)."""
    return sorted(os.listdir(root))


def tool(name: str) -> str | None:
    return shutil.which(name)


def installed(module: str) -> bool:
    """Whether ``module`` imports (none of FAST_LIBS does under ``--without-fast-libs``)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def writable(formats: Iterable[str]) -> list[str]:
    """Those of ``formats`` (extensions) that this installation writes: .tar.zst only where
    pyzstd is installed."""
    return [ext for ext in formats if not ext.endswith("zst") or installed("pyzstd")]


def tar_file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    return info, data


def tar_dir(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info, None


def tar_link(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def tar_special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3
    return info, None


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py: bench/ is not a package, so its modules are loaded from their files."""
    spec = importlib.util.spec_from_file_location(f"arcman_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Stalled(io.RawIOBase):
    """A pipe whose writer is alive but stops sending: ``data``, then a read that waits for
    ``resume`` (30 s at most: a hang guard), and then the end. ``waiting`` is set while that
    read waits; ``closed_event`` once the stream is closed."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._position = 0
        self.waiting = threading.Event()
        self.resume = threading.Event()
        self.closed_event = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            self.waiting.set()
            self.resume.wait(30)
            self.waiting.clear()
            return 0
        n = min(len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        self._position += n
        return n

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        super().close()
        self.closed_event.set()


GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is the reference for gitignore rules")


def build_layout(root: Path, layout: dict[str, str]) -> Path:
    """Files of ``layout`` (path -> content); a path ending in "/" is an empty directory."""
    for rel, content in layout.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def gitignore_kept(root: Path) -> set[str]:
    """The paths ``arcman create --gitignore`` archives from ``root``, .git left aside."""
    patterns = [pattern for pattern, _ in gitignore_patterns(str(root))]
    collector = Collector(str(root), exclude_patterns=patterns, exclude_paths=set(),
                          follow_symlinks=False, max_file_size=None, skip_errors=False)
    return {p for p in collector.collect().entries.names if p.split("/")[0] != ".git"}


def git(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """git without the user's or the system's configuration."""
    assert GIT is not None
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run([GIT, *args], env=env, capture_output=True, check=False, **kwargs)


def git_ignored(cwd: Path, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` (relative to ``cwd``, in a repository) git check-ignore ignores."""
    # Bytes, not text: text mode would read a name's "\r" as a line end. Each path after
    # "./", which git prints back: one that starts with ":" would be read as pathspec magic.
    result = git("-C", str(cwd), "check-ignore", "--stdin", "-z",
                 input=b"\0".join(b"./" + os.fsencode(path) for path in paths))
    assert result.returncode in (0, 1), result.stderr  # 1: nothing ignored
    return {os.fsdecode(name[2:]) for name in result.stdout.split(b"\0") if name}


def tree_paths(root: Path) -> set[str]:
    """Every path under ``root`` (directories too), git's own .git left aside."""
    paths = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        rel = os.path.relpath(directory, root)
        paths.update(os.path.normpath(os.path.join(rel, name)) for name in [*dirs, *files])
    return paths


def run_arcman(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m arcman ARGS`` in a fresh interpreter; a run that would wait for ever fails
    the test with TimeoutExpired instead of hanging it."""
    return subprocess.run([sys.executable, "-m", "arcman", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
