"""Manifest check: what the archive held, member by member, against what its manifest says."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

from .._errors import IntegrityError
from .._manifest import FILE, SYMLINK, ManifestEntry


@dataclass(slots=True)
class Observed:
    """A member as read from the container; ``digest`` resolves once its worker is done."""

    path: str
    kind: str
    size: int
    mode: int
    mtime: int
    digest: Future[str] | str | None = None
    target: str | None = None

    def keep_result(self, future: Future[str]) -> None:
        """Swap a finished future for its digest: a million members must not keep a million
        futures alive until verification. Failures stay in the future for sha256() to raise."""
        if future.exception() is None:
            self.digest = future.result()

    def sha256(self) -> str | None:
        if isinstance(self.digest, Future):
            return self.digest.result()
        return self.digest


def check_against_manifest(observed: list[Observed], manifest: list[ManifestEntry]) -> None:
    """Raise IntegrityError naming the first member that differs from the manifest."""
    listed = {e.path: e for e in manifest}
    if len(listed) != len(manifest):
        raise IntegrityError("manifest lists a path twice")
    seen: set[str] = set()
    for member in observed:
        entry = listed.get(member.path)
        if entry is None:
            raise IntegrityError(f"{member.path!r} is not in the manifest", member.path)
        seen.add(member.path)
        if entry.kind != member.kind:
            raise IntegrityError(
                f"{member.path!r} is a {member.kind}, the manifest says {entry.kind}", member.path
            )
        if member.kind != SYMLINK and member.mode & 0o7777 != entry.mode:
            raise IntegrityError(
                f"{member.path!r} has mode {member.mode & 0o7777:o}, the manifest says "
                f"{entry.mode:o}",
                member.path,
            )
        if member.kind == FILE:
            if member.size != entry.size:
                raise IntegrityError(
                    f"{member.path!r} has {member.size} bytes, the manifest says {entry.size}",
                    member.path,
                )
            if member.sha256() != entry.sha256:
                raise IntegrityError(f"{member.path!r} fails its SHA-256 check", member.path)
        elif member.kind == SYMLINK and member.target != entry.target:
            raise IntegrityError(f"{member.path!r} points elsewhere than its manifest says",
                                 member.path)
    missing = [e.path for e in manifest if e.path not in seen]
    if missing:
        raise IntegrityError(f"{missing[0]!r} is in the manifest but not in the archive",
                             missing[0])
