"""Atomic outputs: write beside the target under a temporary name, rename into place on success.

A failure (or Ctrl-C) removes the temporary file; an existing file of the same name is never
touched until the complete new one replaces it in a single rename.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
from types import TracebackType
from typing import Any

from ._errors import DestinationError

TEMP_MARKER = ".arcman-tmp-"


def describe_os_error(exc: OSError, what: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {what}"
    return f"cannot write {what}: {exc.strerror or exc}"


class AtomicFile:
    """A binary file that becomes ``path`` only when the with-block completes without error.

    It hashes what is written (SHA-256), so the archive's checksum costs no second read.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        directory, name = os.path.split(self.path)
        if not os.path.isdir(directory):
            raise DestinationError(f"output directory {directory!r} does not exist")
        self.temp_path = os.path.join(directory, f".{name}{TEMP_MARKER}{secrets.token_hex(4)}")
        self._hash = hashlib.sha256()
        self.size = 0
        try:
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, self.path)) from exc
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, data: Any) -> int:
        try:
            self._file.write(data)
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, self.path)) from exc
        self._hash.update(data)
        n = len(data) if not isinstance(data, memoryview) else data.nbytes
        self.size += n
        return n

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as exc:
            raise DestinationError(describe_os_error(exc, self.path)) from exc

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.temp_path, self.path)
        except OSError as exc:
            self.discard()
            raise DestinationError(describe_os_error(exc, self.path)) from exc

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # the data is being thrown away anyway
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_path)


def write_atomically(path: str, data: bytes) -> None:
    with AtomicFile(path) as f:
        f.write(data)
