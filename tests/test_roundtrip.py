"""Hypothesis round trips: generated trees through every format, sequential and parallel."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arcman import ArchiveConfig, ArchiveManager, UnsafeMemberError
from arcman._extract.safety import normalize_name
from helpers import FORMATS, snapshot


def _extractable(name: str) -> bool:
    try:
        return normalize_name(name, zip_rules=True) is not None
    except UnsafeMemberError:
        return False


# Any character a POSIX file name may hold except the separator, NUL and the backslash, and no
# names extraction refuses (normalize_name: drive letters...); surrogates cannot be encoded.
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00")
_SHORT = st.text(_CHARS, min_size=1, max_size=12)
_LONG = st.integers(101, 200).map(lambda n: ("long-name-" * 20)[:n])  # pax headers
NAMES = (_SHORT | _LONG).filter(
    lambda n: n not in (".", "..", ".DS_Store", "Thumbs.db", ".arcman-manifest.jsonl")
    and len(n.encode()) <= 200
    and _extractable(n)
)
MTIMES = st.integers(0, 2**31 - 1)
FILES = st.tuples(
    st.just("file"),
    st.binary(max_size=2048) | st.just(b""),
    st.sampled_from([0o644, 0o755, 0o600, 0o700]),
    MTIMES,
)
LINKS = st.tuples(st.just("symlink"), st.sampled_from(["target", ".", "sub/deeper", "ünï"]))
TREES = st.recursive(
    FILES | LINKS,
    lambda children: st.tuples(
        st.just("dir"), st.dictionaries(NAMES, children, max_size=4), MTIMES
    ),
    max_leaves=12,
)
ROOTS = st.dictionaries(NAMES, TREES, max_size=6)

CONFIGS = [
    ArchiveConfig(enable_parallelization=False),
    ArchiveConfig(thread_pool_size=1),
    ArchiveConfig(thread_pool_size=2),
    ArchiveConfig(thread_pool_size=4),
]


def build(root: Path, spec: dict[str, Any]) -> None:
    """Materialize a generated tree; directory mtimes are set after their contents."""
    root.mkdir(exist_ok=True)
    for name, node in spec.items():
        path = root / name
        if node[0] == "file":
            path.write_bytes(node[1])
            path.chmod(node[2])
            os.utime(path, (node[3], node[3]))
        elif node[0] == "symlink":
            path.symlink_to(node[1])
        else:
            build(path, node[1])
            os.utime(path, (node[2], node[2]))


@pytest.mark.parametrize("ext", FORMATS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=ROOTS)
def test_generated_tree_round_trips_with_same_bytes(ext: str, spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = base / "src"
        build(source, spec)
        expected = snapshot(source)
        archives = []
        for i, config in enumerate(CONFIGS):
            archive = base / f"a{i}{ext}"
            with ArchiveManager(config) as manager:
                manager.create_archive(source, archive)
                # Extract with a different threading setting than the one that created it.
                dest = base / f"out{i}"
                result = manager.extract_archive(
                    archive, dest, config=CONFIGS[(i + 1) % len(CONFIGS)]
                )
            assert result.verification == "manifest"
            assert snapshot(dest) == expected
            archives.append(archive.read_bytes())
        assert all(a == archives[0] for a in archives[1:])


@pytest.mark.parametrize("ext", FORMATS)
def test_mode_000_round_trips(tmp_path: Path, ext: str) -> None:
    """A zip's mode 000 was read as "no mode" (0o644 / 0o755), so the archive failed its
    own verify against the manifest's 0. Extracted, they get the owner's rw(x), as tarfile's
    data filter gives (stage.safe_mode)."""
    source = tmp_path / "src"
    (source / "locked").mkdir(parents=True)
    (source / "secret").write_text("x")
    (source / "secret").chmod(0)
    (source / "locked").chmod(0)
    archive = tmp_path / f"a.{ext}"
    with ArchiveManager() as manager:
        manager.create_archive(source, archive)
        assert manager.verify_archive_integrity(archive)
        manager.extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "secret").stat().st_mode & 0o7777 == 0o600
    assert (tmp_path / "out" / "locked").stat().st_mode & 0o7777 == 0o700
    (source / "locked").chmod(0o755)  # so that tmp_path can be removed
