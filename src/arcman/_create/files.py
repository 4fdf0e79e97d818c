"""How one source file is opened, read whole and checked, and a hard link checked: by
ContentReader, on its threads, and by the helper process (_child.py) that reads batches of tiny
files beside the GIL; and how such a batch is made into finished tar records, there or inline
(record_batch).

Imported by that child: nothing here may import more than the standard library's core and
arcman's exception classes, headers and manifest lines.
"""

from __future__ import annotations

import hashlib
import os
import stat

from .._errors import SourceError
from .._manifest_line import FILE, HARDLINK, entry_line
from .headers import BLOCK, LNKTYPE, PADDING, REGTYPE, ustar_header

# Not typing's: see _child.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    # A file for the helper: its path, size and change stamp when collected.
    WireItem = tuple[str, int, int]
    # What the helper made of it: its content and SHA-256 (hex), or why it cannot be read.
    Read = tuple[bytes, str] | str
    # A member for record_batch: its archive name, size, stamp (change_stamp, or link_stamp
    # for a hard link), mode, uid, gid, mtime, user and group name, and a hard link's target
    # (None for a file).
    RecordItem = tuple[str, int, int, int, int, int, int, str, str, str | None]
    # The batch's tar records back to back and its manifest lines, or else each member's
    # read_batch answer (None for a hard link that checked out, else why it did not).
    Recorded = tuple[bytes, str] | list[Read | None]

# O_NONBLOCK: a FIFO put in a file's place would block the open until a writer came, before
# it could be refused; regular files ignore the flag.
_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


def change_stamp(st: os.stat_result) -> int:
    """What tells that a file changed since it was looked at: its ctime, which every write,
    chmod or rename moves (mtime can be set back), in nanoseconds, cut to 32 bits to keep the
    table's row small (a change by an exact multiple of 4.3 s alone goes unseen)."""
    return st.st_ctime_ns & 0xFFFFFFFF


def link_stamp(st: os.stat_result) -> int:
    """What tells that a hard link's name still names the file collected: its inode number,
    cut to 32 bits. Not its change stamp, which moves whenever another name of the file is
    made or removed; while the file has a name, no other file can have its number."""
    return st.st_ino & 0xFFFFFFFF


def check_link(path: str, stamp: int, follow_symlinks: bool) -> None:
    """Raise SourceError unless the hard link at ``path`` still names the file collected (its
    link_stamp): it has no content to read, whose check would tell that it was replaced or
    removed after its file was read."""
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise SourceError(f"cannot read {path!r}: {exc.strerror}", path) from exc
    if not stat.S_ISREG(st.st_mode) or link_stamp(st) != stamp:
        raise SourceError(f"{path!r} changed while the archive was being made", path)


def open_source(path: str, follow_symlinks: bool) -> int:
    """Open a source file for reading: not through a symlink unless following them, and never
    blocking (O_NONBLOCK: a FIFO put in a file's place would wait for a writer)."""
    flags = _OPEN_FLAGS | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        return os.open(path, flags)
    except OSError as exc:
        raise SourceError(f"cannot read {path!r}: {exc.strerror}", path) from exc


def check_unchanged(fd: int, size: int, stamp: int, path: str) -> None:
    """Raise SourceError unless the open file is still the one collection saw: a regular file
    of its size and change_stamp. Checked once the file is read (one fstat), so that it also
    catches a rewrite in place at the same size while it was read, whose bytes would be part
    old and part new, a version of the file that never existed (GNU tar: "file changed as we
    read it"); and a swap for a FIFO or another file."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != size or change_stamp(st) != stamp:
        raise SourceError(f"{path!r} changed while the archive was being made", path)


def read_whole(path: str, size: int, stamp: int, follow_symlinks: bool) -> bytes:
    """The whole small file, checked with check_unchanged."""
    fd = open_source(path, follow_symlinks)
    try:
        try:
            data = os.read(fd, size + 1) if size else os.read(fd, 1)
            while len(data) < size:
                more = os.read(fd, size + 1 - len(data))
                if not more:
                    break
                data += more
        except OSError as exc:
            raise SourceError(f"cannot read {path!r}: {exc.strerror}", path) from exc
        check_unchanged(fd, size, stamp, path)  # before the size: a swap says so
    finally:
        os.close(fd)
    if len(data) != size:
        raise SourceError(f"{path!r} changed size while it was being read", path)
    return data


def read_batch(follow: str, batch: list[WireItem]) -> list[Read]:
    """The helper's task: read each file of ``batch`` (``follow`` is "follow" when symlinks
    are followed), each one's content and SHA-256, or the message of its SourceError."""
    follow_symlinks = follow == "follow"
    results: list[Read] = []
    for path, size, stamp in batch:
        try:
            data = read_whole(path, size, stamp, follow_symlinks)
        except SourceError as exc:
            results.append(str(exc))
            continue
        results.append((data, hashlib.sha256(data).hexdigest()))
    return results


def record_batch(follow: str, root: str, batch: list[RecordItem]) -> Recorded:
    """The helper's task for tar archives (run inline too): each file of ``batch``, under
    ``root``, read as read_batch reads it, each hard link checked (check_link), and the batch
    made into its members' tar records (plain ustar header, content, padding) and manifest
    lines, each joined into one. A batch with a member that cannot be read or checked, or
    that needs more than a plain header (a long or non-ASCII name), is answered with each
    member's answer instead: its caller makes those members as it makes any other."""
    contents = iter(read_batch(follow, [
        (os.path.join(root, item[0]), item[1], item[2]) for item in batch if item[9] is None
    ]))
    answer: list[Read | None] = []
    for name, _, stamp, *_, target in batch:
        if target is None:
            answer.append(next(contents))
            continue
        try:
            check_link(os.path.join(root, name), stamp, follow == "follow")
        except SourceError as exc:
            answer.append(str(exc))
            continue
        answer.append(None)
    records: list[bytes] = []
    lines: list[str] = []
    for (name, size, _, mode, uid, gid, mtime, user, group, target), item in zip(
        batch, answer, strict=True
    ):
        if isinstance(item, str):
            return answer
        if item is None:  # a hard link
            header = ustar_header(name, LNKTYPE, mode, uid, gid, 0, mtime, target or "", user,
                                  group)
            if header is None:
                return answer
            records.append(header)
            lines.append(entry_line(name, HARDLINK, 0, mode, mtime, None, target))
            continue
        data, digest = item
        header = ustar_header(name, REGTYPE, mode, uid, gid, size, mtime, "", user, group)
        if header is None:
            return answer
        records += (header, data, PADDING[size % BLOCK])
        lines.append(entry_line(name, FILE, size, mode, mtime, digest))
    return b"".join(records), "".join(lines)
