"""Mutation fuzzing: damaged archives of every format are refused, never half-accepted.

Each case takes a valid arcman archive, damages it (bit flips, truncation, splices, zeroed
runs; positions biased towards headers and directories, where damage is most interesting),
then verifies and extracts it, from the file and from a pipe-like stream of the same bytes.
The only acceptable outcomes are an ArchiveError, or success with a tree identical to the
original; and the stream must come to the same outcome as the file (the same error type, or
the same tree). Every case runs on its own thread under a time bound,
inside a sandbox directory that must hold nothing but the destination afterwards.

ARCMAN_FUZZ_CASES sets the number of cases (``make fuzz`` runs 20000), ARCMAN_FUZZ_SEED the
seed. The counts are printed at the end.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from arcman import ArchiveConfig, ArchiveError, ArchiveManager, IntegrityError
from helpers import FORMATS, writable

CASES = int(os.environ.get("ARCMAN_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("ARCMAN_FUZZ_SEED", "20261129"))
CASE_TIMEOUT = 30.0

Tree = dict[str, tuple[str, bytes, int]]


def snapshot(root: Path) -> Tree:
    """Every path under root with its kind, content (or link target) and permission bits."""
    tree: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            st = full.lstat()
            if full.is_symlink():
                tree[rel] = ("symlink", os.readlink(full).encode(), 0)
            elif full.is_dir():
                tree[rel] = ("dir", b"", st.st_mode & 0o7777)
            else:
                tree[rel] = ("file", full.read_bytes(), st.st_mode & 0o7777)
    return tree


def _source(root: Path) -> None:
    rng = random.Random(7)
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "empty").mkdir(parents=True)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"\n"]
    (root / "etc" / "config.txt").write_bytes(b" ".join(rng.choice(words) for _ in range(4000)))
    (root / "data.bin").write_bytes(rng.randbytes(20_000))
    (root / "zero").write_bytes(b"")
    run = root / "bin" / "run.sh"
    run.write_bytes(b"#!/bin/sh\nexec true\n")
    run.chmod(0o755)
    (root / "current").symlink_to("bin")


@dataclass
class Pristine:
    data: bytes
    tree: Tree


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pristine]:
    base = tmp_path_factory.mktemp("pristine")
    _source(base / "src")
    result = {}
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        for ext in writable(FORMATS):
            archive = base / f"a{ext}"
            manager.create_archive(base / "src", archive)
            manager.extract_archive(archive, base / f"x{ext}")
            result[ext] = Pristine(archive.read_bytes(), snapshot(base / f"x{ext}"))
    return result


def _position(rng: random.Random, n: int) -> int:
    """Anywhere, or near the start/end, where headers, trailers and directories live."""
    roll = rng.random()
    if roll < 0.3:
        return rng.randrange(min(n, 1536))
    if roll < 0.6:
        return max(0, n - 1 - rng.randrange(min(n, 4096)))
    return rng.randrange(n)


def bit_flips(rng: random.Random, data: bytearray, other: bytes) -> str:
    count = rng.choice([1, 1, 2, 4, 8])
    for _ in range(count):
        i = _position(rng, len(data))
        data[i] ^= 1 << rng.randrange(8)
    return f"flip x{count}"


def truncate(rng: random.Random, data: bytearray, other: bytes) -> str:
    cut = _position(rng, len(data))
    if rng.random() < 0.3:
        cut -= cut % 512  # a tar block boundary
    del data[cut:]
    return f"truncate@{cut}"


def splice(rng: random.Random, data: bytearray, other: bytes) -> str:
    """Overwrite or insert a run taken from this archive or another archive of another format."""
    source = other if rng.random() < 0.5 else bytes(data)
    length = rng.randrange(1, 2048)
    start = rng.randrange(max(1, len(source) - length))
    piece = source[start : start + length]
    at = _position(rng, len(data))
    if rng.random() < 0.5:
        data[at : at + len(piece)] = piece
        return f"splice-over@{at}+{len(piece)}"
    data[at:at] = piece
    return f"splice-in@{at}+{len(piece)}"


def zero_run(rng: random.Random, data: bytearray, other: bytes) -> str:
    at = _position(rng, len(data))
    length = rng.choice([1, 4, 16, 512, 4096])
    data[at : at + length] = bytes(len(data[at : at + length]))
    return f"zero@{at}+{length}"


MUTATIONS: list[Callable[[random.Random, bytearray, bytes], str]] = [
    bit_flips, truncate, splice, zero_run,
]


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    accepted_intact: int = 0
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    escapes: list[str] = field(default_factory=list)
    escaped_bytes: int = 0
    corruptions: list[str] = field(default_factory=list)
    stream_mismatches: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _bounded(fn: Callable[[], object]) -> tuple[bool, BaseException | None]:
    """Run fn on a daemon thread; (finished in time, what it raised)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:  # recorded and judged by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(CASE_TIMEOUT)
    return (not thread.is_alive(), outcome[0] if outcome else None)


def _run_case(
    manager: ArchiveManager, box: Path, ext: str, original: Pristine, mutated: bytes, label: str,
    tally: Tally,
) -> None:
    archive = box / f"in{ext}"
    archive.write_bytes(mutated)
    try:
        _judge(manager, box, archive, original, label, tally)
    finally:
        for leftover in box.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()


class _Pipe(io.RawIOBase):
    """The bytes as a pipe gives them: no seek, no size, reads of at most 64 KiB."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), 65536, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def _judge(
    manager: ArchiveManager, box: Path, archive: Path, original: Pristine, label: str, tally: Tally
) -> None:
    dest = box / "dest"
    piped = box / "piped"
    results: dict[str, BaseException | None] = {}
    for op, fn in (
        ("verify", lambda: manager.verify_archive(archive)),
        ("extract", lambda: manager.extract_archive(archive, dest)),
        ("stream", lambda: manager.extract_archive(_Pipe(archive.read_bytes()), piped)),
    ):
        done, exc = _bounded(fn)
        if not done:
            tally.hangs.append(f"{label} ({op})")
            return
        if exc is not None and not isinstance(exc, ArchiveError):
            tally.crashes.append(f"{label} ({op}): {exc!r}")
            return
        results[op] = exc
    stray = sorted(p.name for p in box.iterdir() if p.name not in (archive.name, "dest", "piped"))
    if stray:
        tally.escapes.append(f"{label}: left {stray}")
        tally.escaped_bytes += sum(
            f.stat().st_size for p in stray for f in [box / p, *(box / p).rglob("*")]
            if f.is_file() and not f.is_symlink()
        )
    extract_error, stream_error = results["extract"], results["stream"]
    if type(stream_error) is not type(extract_error) or (
        extract_error is None and snapshot(piped) != snapshot(dest)
    ):
        tally.stream_mismatches.append(
            f"{label}: from a file {extract_error!r}, from a stream {stream_error!r}"
        )
    if stream_error is not None and piped.exists():
        tally.escapes.append(f"{label}: refused from a stream but the destination exists")
    if extract_error is None:
        if snapshot(dest) != original.tree:
            tally.corruptions.append(f"{label}: extracted a tree that differs from the original")
        else:
            tally.accepted_intact += 1
    else:
        tally.refused += 1
        tally.errors[type(extract_error).__name__] += 1
        if dest.exists():
            tally.escapes.append(f"{label}: refused but the destination exists")
        if results["verify"] is None and isinstance(extract_error, IntegrityError):
            tally.corruptions.append(f"{label}: verify accepted what extract refused")


def test_mutated_archives_are_refused_or_intact(
    tmp_path: Path, pristine: dict[str, Pristine], capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    formats = list(pristine)
    tally = Tally()
    box = tmp_path / "box"
    box.mkdir()
    with ArchiveManager(ArchiveConfig(enable_parallelization=False)) as manager:
        for case in range(CASES):
            ext = formats[case % len(formats)]
            original = pristine[ext]
            other = pristine[rng.choice(formats)].data
            data = bytearray(original.data)
            mutation = rng.choice(MUTATIONS)
            detail = mutation(rng, data, other)
            if bytes(data) == original.data:
                continue
            tally.tried += 1
            label = f"case {case} seed {SEED} {ext} {detail}"
            _run_case(manager, box, ext, original, bytes(data), label, tally)
    summary = (
        f"fuzz: {tally.tried} cases tried, {tally.refused} refused, "
        f"{tally.accepted_intact} accepted intact, {len(tally.crashes)} crashes, "
        f"{len(tally.hangs)} hangs, {len(tally.escapes)} escapes "
        f"({tally.escaped_bytes} bytes), {len(tally.corruptions)} silent corruptions, "
        f"{len(tally.stream_mismatches)} stream/file mismatches; "
        f"refusals by type: {dict(tally.errors)}"
    )
    with capsys.disabled():
        print("\n" + summary)
    problems = (
        tally.crashes + tally.hangs + tally.escapes + tally.corruptions + tally.stream_mismatches
    )
    assert not problems, summary + "\n" + "\n".join(problems[:20])
    assert tally.refused > tally.tried // 2  # the mutations really did damage the archives
