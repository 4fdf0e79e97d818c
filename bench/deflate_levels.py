"""CPU time and size of arcman's deflate backend at each level, on one core.

This is where the level table in ``arcman._create.compress`` comes from, and a quick probe of
how fast the machine is today: on a shared host the same run can take 20-30% longer an hour
later, which moves every ratio of a benchmark report that pits zlib-ng against other tools.

The input is the uncompressed tar of a tree (as arcman writes it), cut into the same primed
1 MiB blocks as ``arcman create``, compressed by the same ``DeflateBlocks`` codec; sizes are
relative to ``gzip -6`` of the same tar when gzip is installed.

    python bench/deflate_levels.py [TREE] [--levels 1,6,9] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from arcman import ArchiveConfig, ArchiveManager
from arcman._create.compress import DEFLATE_WINDOW, DeflateBlocks, deflate_backend


def _tar_of(tree: str, scratch: Path) -> bytes:
    out = scratch / "tree.tar"
    with ArchiveManager(ArchiveConfig(create_checksums=False, include_metadata=False)) as m:
        m.create_archive(tree, out)
    return out.read_bytes()


def _gzip6_size(data: bytes) -> int | None:
    if shutil.which("gzip") is None:
        return None
    done = subprocess.run(["gzip", "-6", "-c"], input=data, capture_output=True, check=True)
    return len(done.stdout)


def blocks(level: int, data: bytes) -> Iterator[bytes]:
    """``data`` deflated in primed blocks, as create does: together, one raw deflate stream."""
    codec = DeflateBlocks(level)
    size = codec.block_size
    for offset in range(0, len(data), size):
        history = data[max(0, offset - DEFLATE_WINDOW) : offset]
        yield codec.compress(data[offset : offset + size], history, offset + size >= len(data))[0]


def _deflate(level: int, data: bytes) -> tuple[float, int]:
    """CPU seconds and bytes of blocks(level, data)."""
    started = time.process_time()
    total = sum(len(block) for block in blocks(level, data))
    return time.process_time() - started, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", nargs="?", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--levels", default="1,2,3,4,5,6,7,8,9")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = _tar_of(args.tree, Path(scratch))
    reference = _gzip6_size(data)
    print(f"{args.tree}: tar of {len(data) / 1e6:.1f} MB"
          + (f", gzip -6 {reference / 1e6:.1f} MB" if reference else ""))
    print("level  backend        CPU s   MB/s   size")
    for level in (int(x) for x in args.levels.split(",")):
        runs = [_deflate(level, data) for _ in range(args.repeat)]
        cpu = min(seconds for seconds, _ in runs)
        size = runs[0][1]
        module, native = deflate_backend(level)
        backend = f"{module.__name__.split('.')[0]} {native}"
        ratio = f"{size / reference:.3f}x" if reference else f"{size / 1e6:.1f} MB"
        print(f"{level:5}  {backend:13} {cpu:6.2f} {len(data) / cpu / 1e6:6.0f}   {ratio}")


if __name__ == "__main__":
    main()
