"""How one member's file is created, written and hashed: by the pool's threads, and by the
helper process (_child.py) that writes batches of tiny files beside the GIL.

Imported by that child: nothing here may import more than the standard library's core.
"""

from __future__ import annotations

import errno
import hashlib
import os

# Not typing's: see _child.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    # An mtime as extraction sets it: whole seconds (any that the file system takes), or
    # (seconds, nanoseconds) for one with a fraction (a pax header's), set exactly.
    Mtime = int | tuple[int, int]
    # A file for the helper: (path, data, create_mode, mode_after or None, mtime or None).
    WireItem = tuple[str, bytes | memoryview, int, int | None, Mtime | None]

WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
WRITE_FLAGS |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write may write less than asked (signals, pipes, some file systems): loop."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def set_mtime(target: int | str, mtime: Mtime, *, follow_symlinks: bool = True) -> None:
    """os.utime, where a time that the platform's time_t cannot hold (2038 and later where it
    has 32 bits, as on Raspberry Pi OS's armhf) is an OSError, not an OverflowError."""
    try:
        if isinstance(mtime, tuple):  # in nanoseconds: a float would be ~0.2 us off
            ns = mtime[0] * 1_000_000_000 + mtime[1]
            os.utime(target, ns=(ns, ns), follow_symlinks=follow_symlinks)
        else:
            os.utime(target, (mtime, mtime), follow_symlinks=follow_symlinks)
    except OverflowError:
        raise OSError(errno.EOVERFLOW, f"mtime {mtime} is out of this platform's range") from None


def write_file(
    path: str, data: bytes | memoryview, create_mode: int, mode_after: int | None,
    mtime: Mtime | None,
) -> bytes:
    """Create ``path`` (never an existing file, never through a link), write ``data``, give it
    ``mode_after`` and ``mtime`` where set, and return the data's raw SHA-256."""
    digest = hashlib.sha256(data).digest()
    fd = os.open(path, WRITE_FLAGS, create_mode)
    try:
        write_all(fd, data)
        finish_file(fd, mode_after, mtime)
    finally:
        os.close(fd)
    return digest


def finish_file(fd: int, mode_after: int | None, mtime: Mtime | None) -> None:
    if mode_after is not None:
        os.fchmod(fd, mode_after)
    if mtime is not None:
        set_mtime(fd, mtime)


def write_batch(
    root: str, batch: list[WireItem]
) -> tuple[list[bytes], tuple[int, str] | None]:
    """The helper's task: write each file of ``batch`` under ``root``, in order, until one
    fails. The digests of those written, and the failure (errno, message) or None."""
    prefix = os.path.join(root, "")
    digests: list[bytes] = []
    for path, data, create_mode, mode_after, mtime in batch:
        try:
            digests.append(write_file(prefix + path, data, create_mode, mode_after, mtime))
        except OSError as exc:
            return digests, (exc.errno or 0, exc.strerror or str(exc))
        except ValueError as exc:  # a name the system cannot take (the guard refuses them)
            return digests, (errno.EINVAL, str(exc))
    return digests, None
