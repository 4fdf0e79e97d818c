"""Sequential pure-Python baseline: what a naive ``tarfile`` script does, one file after another.

arcman's "5x faster than the obvious Python approach" target is measured against this.
Members are added in sorted order with paths relative to SRC, like ``tar --sort=name -C SRC .``.

Usage: ``python bench/tarfile_baseline.py SRC OUT.tar.gz``
"""

from __future__ import annotations

import os
import sys
import tarfile


def create(src: str, out: str, level: int = 6) -> None:
    """Write ``out`` as a gzip level-``level`` tar of the tree ``src``, sequentially."""
    with tarfile.open(out, "w:gz", compresslevel=level) as tar:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            if rel != ".":
                tar.add(dirpath, arcname=rel, recursive=False)
            for name in sorted(filenames):
                arcname = os.path.normpath(os.path.join(rel, name))
                tar.add(os.path.join(dirpath, name), arcname=arcname, recursive=False)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    create(sys.argv[1], sys.argv[2])
