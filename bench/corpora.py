"""Generate the benchmark corpora (never committed: they go in a directory given by the caller).

Each corpus is generated into ``ROOT/<name>`` (``ROOT/<name>-s<scale>`` when scaled) through a
temporary directory that is renamed at the end, and a ``<dir>.manifest.json`` beside it records
the parameters: a second call with the same parameters is a no-op, so ``run.py`` can call
:func:`ensure` every time. The manifest lives outside the corpus so it is never archived.

Data is deterministic (seeded) and text-like data is made of single words, so no compressor
can find repeats longer than a word: ratios stay comparable between gzip (32 KiB window)
and zstd (MiB windows, optional long mode).

Usage: ``python bench/corpora.py ROOT [--only big2x1g,tiny20k] [--scale 0.05]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import sysconfig
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30
#: bumped when the generators change, so stale corpora are regenerated
GENERATOR_VERSION = 1


class TextSource:
    """Fast, seeded, text-like bytes: Zipf-distributed pseudo-words picked 65,536 at a time.

    A per-call ``randbytes`` read as 16-bit indices into a word table keeps the whole
    generation in C (about 10 ms per MiB), so gigabytes of fresh text stay cheap.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "de", "an", "el", "or",
                     "is", "um", "ex", "th", "qu", "ba", "zi", "go"]
        words = list(dict.fromkeys(
            "".join(self.rng.choices(syllables, k=self.rng.randint(1, 4)))
            for _ in range(4000)
        ))
        weights = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(words))))
        seps = self.rng.choices([" ", "\n", ", ", ". ", "\t"], weights=[85, 6, 5, 3, 1], k=65536)
        table = self.rng.choices(words, cum_weights=weights, k=65536)
        self.table = [(w + s).encode() for w, s in zip(table, seps, strict=True)]

    def take(self, size: int) -> bytes:
        """Return exactly ``size`` bytes of fresh text."""
        out = bytearray()
        while len(out) < size:
            n_words = max(16, (size - len(out)) // 6)
            idx = memoryview(self.rng.randbytes(2 * n_words)).cast("H")
            out += b"".join(map(self.table.__getitem__, idx))
        return bytes(out[:size])


@dataclass(frozen=True)
class Spec:
    """A corpus: its generator and the parameters that identify one generated instance."""

    name: str
    build: Callable[[Path, float], None]
    describe: str


def _small10(dest: Path, scale: float) -> None:
    """10 text files of a few KB: measures per-invocation overhead (startup, pools)."""
    text = TextSource(10)
    for i in range(10):
        (dest / f"note{i:02d}.txt").write_bytes(text.take(text.rng.randint(2_000, 8_000)))


def _medium50(dest: Path, scale: float) -> None:
    """50 files of 1-4 MiB (x scale): text, random and 256 KiB-interleaved mixes."""
    text = TextSource(50)
    rng = random.Random(51)
    for i in range(50):
        size = max(4096, int(rng.randint(1 * MiB, 4 * MiB) * scale))
        kind = ("text", "random", "mixed")[i % 3]
        with open(dest / f"file{i:02d}.{kind}", "wb") as f:
            done = 0
            for block in itertools.count():
                if done >= size:
                    break
                n = min(256 * 1024, size - done)
                is_text = kind == "text" or (kind == "mixed" and block % 2 == 0)
                f.write(text.take(n) if is_text else rng.randbytes(n))
                done += n


def _tiny20k(dest: Path, scale: float) -> None:
    """20,000 files of 10-200 bytes (x scale) in 20 x 10 dirs: per-member overhead dominates."""
    text = TextSource(20)
    n_files = max(100, round(20_000 * scale))
    for i in range(n_files):
        d = dest / f"d{i // 1000:02d}" / f"s{i // 100 % 10}"
        if i % 100 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(text.take(text.rng.randint(10, 200)))


def _big2x1g(dest: Path, scale: float) -> None:
    """2 files of 1 GiB (x scale), 1 MiB chunks alternating text and random; streamed."""
    text = TextSource(2)
    rng = random.Random(3)
    chunks = max(1, round(GiB * scale / MiB))
    for i in range(2):
        with open(dest / f"big{i}.bin", "wb") as f:
            for c in range(chunks):
                f.write(text.take(MiB) if c % 2 == 0 else rng.randbytes(MiB))


def stdlib_source() -> Path:
    """The running interpreter's stdlib tree (the one copied by the ``stdlib`` corpus)."""
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib(dest: Path, scale: float) -> None:
    """Copy of the stdlib without site-packages (keeps __pycache__): a real source tree.

    Scaled copies keep a stable pseudo-random ``scale`` fraction of the files.
    """
    src = stdlib_source()

    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {"site-packages"} if Path(directory) == src else set()
        if scale < 1.0:
            rel = Path(directory).relative_to(src)
            for n in names:
                full = Path(directory) / n
                if not full.is_dir() and zlib.crc32(str(rel / n).encode()) % 10_000 >= scale * 1e4:
                    skipped.add(n)
        return skipped

    shutil.copytree(src, dest, symlinks=True, ignore=ignore, dirs_exist_ok=True)


SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("stdlib", _stdlib, "Python stdlib tree without site-packages (~7,700 files, 250 MB)"),
        Spec("small10", _small10, "10 text files of 2-8 KB"),
        Spec("medium50", _medium50, "50 files of 1-4 MiB: text, random, mixed"),
        Spec("tiny20k", _tiny20k, "20,000 files of 10-200 bytes in 200 dirs"),
        Spec("big2x1g", _big2x1g, "2 files of 1 GiB, alternating 1 MiB text/random chunks"),
    )
}


def corpus_dir(root: Path, name: str, scale: float) -> Path:
    """Where corpus ``name`` at ``scale`` lives: full and scaled copies can coexist."""
    return root / (name if scale == 1.0 else f"{name}-s{scale:g}")


def _params(name: str, scale: float) -> dict[str, object]:
    params: dict[str, object] = {"name": name, "scale": scale, "version": GENERATOR_VERSION}
    if name == "stdlib":
        params["source"] = str(stdlib_source())
    return params


def tree_stats(path: Path) -> tuple[int, int]:
    """(number of regular files, total bytes) under ``path``."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(dirpath, n))
            files += 1
            size += st.st_size
    return files, size


def ensure(root: Path, name: str, scale: float = 1.0, log: Callable[[str], None] = print) -> Path:
    """Generate corpus ``name`` under ``root`` unless an identical one is already there."""
    dest = corpus_dir(root, name, scale)
    manifest = dest.with_name(dest.name + ".manifest.json")
    params = _params(name, scale)
    if dest.is_dir() and manifest.is_file():
        recorded = json.loads(manifest.read_text())
        if recorded.get("params") == params:
            return dest
    log(f"generating corpus {name} (scale {scale:g}) in {dest}")
    tmp = dest.with_name(dest.name + ".tmp")
    for stale in (tmp, dest):
        if stale.exists():
            shutil.rmtree(stale)
    manifest.unlink(missing_ok=True)
    tmp.mkdir(parents=True)
    SPECS[name].build(tmp, scale)
    tmp.rename(dest)
    files, size = tree_stats(dest)
    manifest.write_text(json.dumps({"params": params, "files": files, "bytes": size}, indent=2))
    log(f"  {name}: {files} files, {size / MiB:.1f} MiB")
    return dest


def manifest_of(root: Path, name: str, scale: float) -> dict[str, object]:
    """The recorded manifest (params, files, bytes) of a generated corpus."""
    dest = corpus_dir(root, name, scale)
    data: dict[str, object] = json.loads(dest.with_name(dest.name + ".manifest.json").read_text())
    return data


def parse_names(value: str | None) -> list[str]:
    """Parse a ``--only a,b`` list, keeping SPECS order and rejecting unknown names."""
    if not value:
        return list(SPECS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise SystemExit(f"unknown corpus {', '.join(unknown)}; known: {', '.join(SPECS)}")
    return [n for n in SPECS if n in names]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: generate the selected corpora."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("root", type=Path, help="directory that receives the corpora")
    ap.add_argument("--only", help=f"comma-separated subset of: {', '.join(SPECS)}")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="size/count factor for quick runs (e.g. 0.0625: 64 MiB big files)")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1:
        ap.error("--scale must be in (0, 1]")
    for name in parse_names(args.only):
        ensure(args.root, name, args.scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
