"""The system calls commit and write-back need that Python's os module does not bind
(renameat2, renamex_np, syncfs), called through ctypes.

ctypes is imported on first use: ~2 ms that a run which commits nothing skips.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any


def libc() -> Any:
    """The C library (looked up on each call, which costs microseconds: tests swap it)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def last_errno() -> int:
    import ctypes

    return ctypes.get_errno()


def syncfs(fd: int, path: str) -> bool:
    """Write out the file system that holds ``fd`` (opened on ``path``) and wait until it is on
    disk; False where there is no syncfs (not Linux, or a libc without it), so the caller
    falls back to sync(), which reports nothing. Raises OSError with the write-back error
    syncfs reports (Linux 5.8+: EIO from a failing SD card, ENOSPC or EDQUOT on NFS)."""
    if not sys.platform.startswith("linux"):
        return False
    call = getattr(libc(), "syncfs", None)
    if call is None:
        return False
    if call(fd) == 0:
        return True
    err = last_errno()
    if err == errno.ENOSYS:
        return False
    raise OSError(err, os.strerror(err), path)
