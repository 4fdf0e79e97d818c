"""The main job on a bundled example: create -> verify -> list -> extract -> stats.

Run with `make demo`. Writes only under examples/out/ (removed and remade each run).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from arcman import ArchiveConfig, ArchiveManager

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "site"
OUT = HERE / "out"


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    archive = OUT / "site.tar.gz"
    with ArchiveManager(ArchiveConfig(thread_pool_size=2)) as manager:
        created = manager.create_archive(SOURCE, archive)
        print(f"created  {archive.relative_to(HERE)}: {created.file_count} files, "
              f"{created.uncompressed_size} -> {created.compressed_size} bytes")
        print(f"sha256   {created.checksum_sha256}")
        manager.verify_archive_integrity(archive)
        print("verified every member against the manifest")
        print("members:")
        for entry in manager.list_archive(archive):
            digest = (entry.sha256 or "-")[:12]
            print(f"  {entry.type:8s} {entry.mode:04o} {entry.size:>6d} {digest:12s} {entry.name}")
        extracted = manager.extract_archive(archive, OUT / "deployed")
        print(f"extracted {extracted.file_count} files to {(OUT / 'deployed').relative_to(HERE)} "
              f"(verified by {extracted.verification})")
        stats = manager.get_stats()
    print("stats:", json.dumps({k: stats[k] for k in ("operations", "files", "bytes_in",
                                                     "parallel_operations", "pool_size")}))


if __name__ == "__main__":
    main()
