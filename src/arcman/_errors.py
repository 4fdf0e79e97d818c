"""The exception hierarchy: everything the public API raises derives from ArchiveError."""

from __future__ import annotations


class ArchiveError(Exception):
    """Root of every error arcman raises on purpose."""


class ConfigError(ArchiveError, ValueError):
    """An ArchiveConfig or ExtractionLimits value is invalid (of a wrong type, out of range).

    A ValueError too, so callers written against the plain ValueError it used to be still work.
    """


class UnsupportedFormatError(ArchiveError, ValueError):
    """The archive format (by extension or by content) is not one arcman handles."""


class SourceError(ArchiveError):
    """A source file or directory cannot be archived (missing, unreadable, changed, too large)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class DestinationError(ArchiveError):
    """The output cannot be written: destination not empty, no space, permission denied."""


class UnsafeMemberError(ArchiveError):
    """An archive member would escape the destination or is of a refused kind."""

    _summary = "unsafe member"

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"{self._summary} {member!r}: {reason}")
        self.member = member
        self.reason = reason


class LimitExceededError(UnsafeMemberError):
    """An archive exceeds an extraction limit (size, member count, compression ratio)."""

    # Not "unsafe member": the member the limit is reached at is often harmless.
    _summary = "over an extraction limit at"


class IntegrityError(ArchiveError):
    """The archive's contents do not match its manifest or checksum."""

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class CorruptArchiveError(IntegrityError):
    """The container itself is damaged: truncated, bad CRC, malformed headers, trailing garbage."""
