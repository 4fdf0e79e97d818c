"""arcman: fast, parallel, verified and atomic archives (tar, tar.gz/bz2/xz/zst, zip)."""

from ._config import ArchiveConfig, ExtractionLimits
from ._errors import (
    ArchiveError,
    CorruptArchiveError,
    DestinationError,
    IntegrityError,
    LimitExceededError,
    SourceError,
    UnsafeMemberError,
    UnsupportedFormatError,
)
from ._formats import CompressionFormat
from ._manager import ArchiveManager
from ._metadata import ArchiveEntry, ArchiveMetadata

__version__ = "0.1.0"

__all__ = [
    "ArchiveConfig",
    "ArchiveEntry",
    "ArchiveError",
    "ArchiveManager",
    "ArchiveMetadata",
    "CompressionFormat",
    "CorruptArchiveError",
    "DestinationError",
    "ExtractionLimits",
    "IntegrityError",
    "LimitExceededError",
    "SourceError",
    "UnsafeMemberError",
    "UnsupportedFormatError",
    "__version__",
]
