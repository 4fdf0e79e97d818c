"""The compression libraries this installation has, and what stands in for those it lacks.

ISA-L (isal), zlib-ng and libzstd (pyzstd, through backports.zstd) have wheels for x86-64
and 64-bit ARM only, and pyproject.toml installs them there. On 32-bit ARM (Raspberry Pi OS
armhf: armv7l, armv6l) pip would have to build them from source, with a compiler and
ISA-L's toolchain that a small target rarely has, and a failed build fails the whole
install. arcman installs without them there and runs on the standard library: deflate and
gzip through zlib (the same formats, readable by every tool, only slower), and .tar.zst
refused with a clear error until pyzstd is installed (``pip install arcman[fast]`` asks for
all three anywhere). Each is looked up when first needed, so an import error is the
library's absence, whatever the platform.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from types import ModuleType

from ._errors import UnsupportedFormatError


def isal_zlib() -> ModuleType | None:
    """python-isal's zlib-compatible module, or None."""
    try:
        from isal import isal_zlib as module
    except ImportError:
        return None
    return module


def zlib_ng() -> ModuleType | None:
    """python-zlib-ng's zlib-compatible module, or None."""
    try:
        from zlib_ng import zlib_ng as module
    except ImportError:
        return None
    return module


def pyzstd() -> ModuleType:
    """pyzstd, which .tar.zst needs: there is no zstd in Python before 3.14."""
    try:
        import pyzstd as module
    except ImportError:
        raise UnsupportedFormatError(
            "tar.zst needs the pyzstd package, which is not installed here"
            " (pip install pyzstd, or arcman[fast])"
        ) from None
    return module


def crc32_combiner() -> Callable[[int, int, int], int]:
    """``combine(crc1, crc2, length2)``: the CRC-32 of A + B from A's, B's and B's length;
    ISA-L's or zlib-ng's where installed, else ``_combine_through_zeros``."""
    for module in (isal_zlib(), zlib_ng()):
        if module is not None:
            combine: Callable[[int, int, int], int] = module.crc32_combine
            return combine
    return _combine_through_zeros


def _combine_through_zeros(crc1: int, crc2: int, length2: int) -> int:
    """The standard library has no crc32_combine. The CRC is affine in its input, so A + B's
    is what A's becomes when B's length in zeros follows, plus B's, less what those zeros
    alone give: ~0.5 ms a MiB of B, where a hand-written GF(2) matrix product (zlib's way)
    would be ~40 lines to get right for a fallback."""
    zeros = bytes(length2)
    return zlib.crc32(zeros, crc1) ^ crc2 ^ zlib.crc32(zeros)
