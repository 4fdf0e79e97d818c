"""arcman: fast, parallel, verified and atomic archives (tar, tar.gz/bz2/xz/zst, zip).

The public names are imported on first use (PEP 562), so ``import arcman`` and the CLI's
start-up (``arcman --version``) do not pay for the compression and extraction modules.
"""

from __future__ import annotations

import importlib

# Not typing's (~2.5 ms, which ``arcman --version`` would otherwise be the only one to pay);
# type checkers treat any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._config import ArchiveConfig, ExtractionLimits
    from ._errors import (
        ArchiveError,
        ConfigError,
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

_HOMES = {
    "ArchiveConfig": "_config",
    "ExtractionLimits": "_config",
    "ArchiveError": "_errors",
    "ConfigError": "_errors",
    "CorruptArchiveError": "_errors",
    "DestinationError": "_errors",
    "IntegrityError": "_errors",
    "LimitExceededError": "_errors",
    "SourceError": "_errors",
    "UnsafeMemberError": "_errors",
    "UnsupportedFormatError": "_errors",
    "CompressionFormat": "_formats",
    "ArchiveManager": "_manager",
    "ArchiveEntry": "_metadata",
    "ArchiveMetadata": "_metadata",
}


if not TYPE_CHECKING:
    # Hidden from type checkers: a module __getattr__ tells them that every name exists (as
    # Any), so a misspelled ``from arcman import ArchiveManger`` passed ``mypy --strict`` and
    # left what used it unchecked. They see the imports above instead.

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'arcman' has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{home}", __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ArchiveConfig",
    "ArchiveEntry",
    "ArchiveError",
    "ArchiveManager",
    "ArchiveMetadata",
    "CompressionFormat",
    "ConfigError",
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
