"""bench/floors.py: the floor does the work create cannot skip, in full, and judges targets."""

from __future__ import annotations

import gzip
import hashlib
import random
from pathlib import Path

import pytest

from arcman._backends import pyzstd
from helpers import load_bench

floors = load_bench("floors")


def _stream(size: int) -> bytes:
    """Text with stretches of noise, as a tar stream of mixed files looks."""
    rng = random.Random(size)
    pieces, total = [], 0
    while total < size:
        piece = (
            rng.randbytes(rng.randrange(1, 200_000)) if rng.random() < 0.3
            else b"def f(x):\n    return x + %d\n" % rng.randrange(10**6) * rng.randrange(1, 4000)
        )
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)[:size]


@pytest.mark.parametrize("fmt", ["gz", "zst"])
@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 17])
def test_the_floor_writes_the_whole_archive_and_both_hashes(
    fmt: str, size: int, tmp_path: Path
) -> None:
    data = _stream(size)
    content = size // 3
    out = tmp_path / "floor.out"
    floor = floors.ideal_create(memoryview(data), content, fmt, 2, out)
    archive = out.read_bytes()
    assert len(archive) == floor.size
    decompress = gzip.decompress if fmt == "gz" else pyzstd().decompress
    assert decompress(archive) == data
    assert floor.content_sha256 == hashlib.sha256(data[:content]).hexdigest()
    assert floor.archive_sha256 == hashlib.sha256(archive).hexdigest()
    assert floor.wall > 0
    assert [p.name for p in tmp_path.iterdir()] == ["floor.out"]  # no temporary left


def test_the_floor_compresses_as_create_does_whatever_the_thread_count(tmp_path: Path) -> None:
    data = memoryview(_stream(5 * 1024 * 1024))
    floors.ideal_create(data, 0, "gz", 1, tmp_path / "one")
    floors.ideal_create(data, 0, "gz", 3, tmp_path / "three")
    assert (tmp_path / "one").read_bytes() == (tmp_path / "three").read_bytes()


def test_the_verdict_separates_the_machine_from_arcman() -> None:
    assert floors.verdict(0.5, 0.55, 0.6).startswith("out of reach here: the floor alone is 1.20x")
    assert floors.verdict(0.5, 0.45, 0.3) == "met"
    assert floors.verdict(0.5, 0.49, 0.51) == "met"  # met is met, even at the floor's edge
    assert floors.verdict(0.2, 0.23, 0.202).startswith("at the edge: the floor alone is 1.01x")
    assert floors.verdict(0.5, 0.55, 0.3).startswith("reachable in principle")
    assert floors.verdict(1.0, None, 0.9).startswith("reachable in principle")


def test_the_report_lists_every_target_of_every_corpus() -> None:
    row = {
        "target": "create .tar.gz <= 0.5x tar|pigz -p2 -6", "limit": 0.5, "peer": "p",
        "peer_wall": 4.0, "arcman_wall": 2.2, "floor_wall": 1.5, "startup": 0.1,
        "actual_ratio": 0.55, "floor_ratio": 0.4,
    }
    corpus = {
        "corpus": "stdlib", "tar_bytes": 100, "content_bytes": 90, "rows": [row],
        "floor_cpu": {"gz": 3.0, "zst": 1.0}, "floor_size": {"gz": 60, "zst": 40},
    }
    machine = {"cpu": "c", "python": "p"}
    meta = {"date": "d", "repeat": 5, "cores": 2, "argv": [], "machine": machine}
    text = floors.render({"meta": meta, "corpora": [corpus]})
    assert "| stdlib | create .tar.gz <= 0.5x tar\\|pigz -p2 -6 | 4.000 | 2.200 | 1.500 | 0.100 " \
           "| 0.550x | 0.400x | reachable in principle: the gap is arcman's overhead" in text
    assert "| stdlib | 90 | 100 | 3.000 | 1.000 | 60 | 40 |" in text
    assert text.endswith("\n")
