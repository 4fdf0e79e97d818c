"""Archive formats: names, extensions, default levels and detection by magic bytes."""

from __future__ import annotations

import enum
import os

from ._errors import CorruptArchiveError, SourceError, UnsupportedFormatError

HEAD_SIZE = 512  # what detection reads: a tar header


class CompressionFormat(enum.Enum):
    TAR = "tar"
    TAR_GZ = "tar.gz"
    TAR_BZ2 = "tar.bz2"
    TAR_XZ = "tar.xz"
    TAR_ZST = "tar.zst"
    ZIP = "zip"

    @property
    def extensions(self) -> tuple[str, ...]:
        return _EXTENSIONS[self]

    @property
    def default_level(self) -> int:
        return _LEVELS[self][0]

    @property
    def level_range(self) -> tuple[int, int]:
        return _LEVELS[self][1]

    @classmethod
    def from_extension(cls, name: str | os.PathLike[str]) -> CompressionFormat:
        """The format named by a file name's extension; unknown extensions raise, never guess."""
        lower = os.fspath(name).lower()
        best: tuple[int, CompressionFormat] | None = None
        for fmt, extensions in _EXTENSIONS.items():
            for ext in extensions:
                if lower.endswith(ext) and (best is None or len(ext) > best[0]):
                    best = (len(ext), fmt)
        if best is None:
            known = ", ".join(e for exts in _EXTENSIONS.values() for e in exts)
            raise UnsupportedFormatError(
                f"cannot tell the archive format of {os.fspath(name)!r}: "
                f"known extensions are {known}"
            )
        return best[1]

    @classmethod
    def detect(cls, path: str | os.PathLike[str]) -> CompressionFormat:
        """The format of an existing archive, from its first bytes (extensions can lie).

        An archive that cannot be read (missing, a directory, no permission) is a SourceError,
        not an unknown format: what is wrong is the input, not its kind."""
        try:
            with open(path, "rb") as f:
                head = f.read(HEAD_SIZE)
        except OSError as exc:
            raise SourceError(
                f"cannot read {os.fspath(path)!r}: {exc.strerror}", os.fspath(path)
            ) from exc
        return cls.detect_head(head, repr(os.fspath(path)))

    @classmethod
    def detect_head(cls, head: bytes, name: str) -> CompressionFormat:
        """The format of an archive whose first HEAD_SIZE bytes (fewer: all of it) are
        ``head``; ``name`` says which archive in an error."""
        if head.startswith(b"\x1f\x8b"):
            return cls.TAR_GZ
        if head.startswith(b"BZh"):
            return cls.TAR_BZ2
        if head.startswith(b"\xfd7zXZ\x00"):
            return cls.TAR_XZ
        # A zstd frame, or a skippable frame (magic 0x184D2A50-5F) as pzstd and seekable
        # zstd put first.
        if head.startswith(b"\x28\xb5\x2f\xfd") or (head[1:4] == b"\x2a\x4d\x18"
                                                     and head[0] & 0xF0 == 0x50):
            return cls.TAR_ZST
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return cls.ZIP
        if head[257:262] == b"ustar":
            if len(head) < HEAD_SIZE:
                raise CorruptArchiveError(
                    f"{name} is a tar cut short: {len(head)} bytes, less than its first header"
                )
            return cls.TAR
        if len(head) == HEAD_SIZE and _is_v7_tar_header(head):
            return cls.TAR
        if not head:
            raise CorruptArchiveError(f"{name} is empty")
        if not head.strip(b"\0"):
            # An empty tar (`tar cf x.tar -T /dev/null`) or a zeroed file: neither says what
            # it is, and as a tar it would extract to nothing (or empty DEST under --replace).
            raise CorruptArchiveError(
                f"{name} starts with zeros where a tar header belongs: an empty tar "
                "or a zeroed file, which arcman does not take for an archive"
            )
        raise UnsupportedFormatError(f"{name} is not an archive arcman recognizes")


def _is_v7_tar_header(block: bytes) -> bool:
    """A pre-POSIX tar header has no magic; accept it when its checksum field adds up."""
    try:
        stored = int(block[148:156].replace(b"\x00", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:])


_EXTENSIONS: dict[CompressionFormat, tuple[str, ...]] = {
    CompressionFormat.TAR: (".tar",),
    CompressionFormat.TAR_GZ: (".tar.gz", ".tgz"),
    CompressionFormat.TAR_BZ2: (".tar.bz2", ".tbz2", ".tbz"),
    CompressionFormat.TAR_XZ: (".tar.xz", ".txz"),
    CompressionFormat.TAR_ZST: (".tar.zst", ".tzst", ".tar.zstd"),
    CompressionFormat.ZIP: (".zip",),
}

# (default level, (min, max)); the defaults are each tool's own: gzip -6, bzip2 -9, xz -6, zstd -3.
_LEVELS: dict[CompressionFormat, tuple[int, tuple[int, int]]] = {
    CompressionFormat.TAR: (0, (0, 0)),
    CompressionFormat.TAR_GZ: (6, (1, 9)),
    CompressionFormat.TAR_BZ2: (9, (1, 9)),
    CompressionFormat.TAR_XZ: (6, (0, 9)),
    CompressionFormat.TAR_ZST: (3, (1, 22)),
    CompressionFormat.ZIP: (6, (0, 9)),
}
