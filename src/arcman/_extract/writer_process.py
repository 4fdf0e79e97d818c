"""WriterProcess: writes batches of tiny files in a child interpreter, beside the GIL.

Extracting a tree of tiny files is Python work per member on one core: threads cannot share
it out, because each of a file's four system calls gives up the GIL and the worker then waits
to win it back from the thread parsing the archive (batches of tiny files are written inline
for that reason, see _workers.TINY_FILE_AVERAGE). A second interpreter has a GIL of its own.
This one is started, as ``python -I -S`` running serve() below, once an extraction has shown
that it has batches of tiny files to give it; the batches go down a pipe (marshal: paths,
bytes and ints only), the child creates, writes and closes each file exactly as a worker
thread would (write_file, shared by both) and answers each batch, in order, with the files'
SHA-256 digests, or those written before the first error and the error. A reader thread turns
the answers into each batch's completion. The child stops at the end of its input: closed by
close() once every batch has been answered, or by the death of this process, so it never
outlives the extraction; kill() stops it at once when the extraction fails.

This module is also the child's whole program, so it imports nothing outside the standard
library's core at import time (the child starts in ~10 ms).
"""

from __future__ import annotations

import errno
import hashlib
import marshal
import os
import struct
import sys
import time

# Not typing's: it and what it imports are ~8 ms of the child's start (see __init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable
    from typing import IO, Any

    # A batch for the child: (path, data, create_mode, mode_after or None, mtime or None).
    WireItem = tuple[str, bytes | memoryview, int, int | None, int | None]
    # A batch's answer: the digests of the files written, the failure that stopped it or
    # None, and the child's seconds on it.
    Reply = Callable[[list[bytes], OSError | None, float], None]

WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL
WRITE_FLAGS |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_LENGTH = struct.Struct("<I")


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write may write less than asked (signals, pipes, some file systems): loop."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def set_mtime(target: int | str, mtime: int, *, follow_symlinks: bool = True) -> None:
    """os.utime, where a time that the platform's time_t cannot hold (2038 and later where it
    has 32 bits, as on Raspberry Pi OS's armhf) is an OSError, not an OverflowError."""
    try:
        os.utime(target, (mtime, mtime), follow_symlinks=follow_symlinks)
    except OverflowError:
        raise OSError(errno.EOVERFLOW, f"mtime {mtime} is out of this platform's range") from None


def write_file(
    path: str, data: bytes | memoryview, create_mode: int, mode_after: int | None,
    mtime: int | None,
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


def finish_file(fd: int, mode_after: int | None, mtime: int | None) -> None:
    if mode_after is not None:
        os.fchmod(fd, mode_after)
    if mtime is not None:
        set_mtime(fd, mtime)


def _read_frame(stream: IO[bytes]) -> Any:
    """The next marshalled frame, or None at the end of the stream or at bytes that are not
    one (the child is then no writer of ours)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        return None
    try:
        return marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None


def _frame(value: Any) -> bytes:
    body = marshal.dumps(value)
    return _LENGTH.pack(len(body)) + body


def serve() -> None:
    """The child: write the batches read from stdin under the root named by argv[1]."""
    import signal

    # Ctrl-C reaches the whole process group: the parent decides, and closes or kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prefix = os.path.join(sys.argv[1], "")
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    out.write(_frame("ready"))
    out.flush()
    while (batch := _read_frame(inp)) is not None:
        started = time.perf_counter()
        digests: list[bytes] = []
        failure = None
        for path, data, create_mode, mode_after, mtime in batch:
            try:
                digests.append(write_file(prefix + path, data, create_mode, mode_after, mtime))
            except OSError as exc:
                failure = (exc.errno or 0, exc.strerror or str(exc))
                break
            except ValueError as exc:  # a name the system cannot take (the guard refuses them)
                failure = (errno.EINVAL, str(exc))
                break
        out.write(_frame((digests, failure, time.perf_counter() - started)))
        out.flush()


class WriterProcess:
    def __init__(self, root: str) -> None:
        """Start the child for the tree at ``root``; it is ready() once it has said so.
        Raises OSError if it cannot be started."""
        import subprocess
        import threading
        from collections import deque

        if not sys.executable or getattr(sys, "frozen", False):  # no interpreter to run
            raise OSError(errno.ENOEXEC, "no Python interpreter to start")
        self._replies: deque[Reply] = deque()
        self._ready = False
        self._ended: str | None = None  # why no more answers will come
        self._lock = threading.Lock()
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        code = (
            f"import sys; sys.path.insert(0, {here!r}); "
            "from arcman._extract.writer_process import serve; serve()"
        )
        self._child: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, os.path.abspath(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self._reader = threading.Thread(target=self._read, name="arcman-writer-replies")
        self._reader.daemon = True
        self._reader.start()

    def ready(self) -> bool:
        return self._ready and self._ended is None

    def submit(self, items: list[WireItem], reply: Reply) -> None:
        """Send a batch; ``reply`` is called on the reader thread with its answer, or with an
        OSError for every file if the child ends first."""
        frame = _frame(items)
        with self._lock:
            ended = self._ended
            if ended is None:
                self._replies.append(reply)
        if ended is not None:
            reply([], OSError(errno.EPIPE, f"the file writer process {ended}"), 0.0)
            return
        # Not under the lock: the pipe may be full until the reader has taken an answer.
        assert self._child.stdin is not None
        try:
            write_all(self._child.stdin.fileno(), frame)
        except OSError:
            # It stopped reading: its end makes the reader answer every batch, this one too.
            self._child.kill()

    def _read(self) -> None:
        assert self._child.stdout is not None
        stream = self._child.stdout
        try:
            if _read_frame(stream) != "ready":
                return
            self._ready = True
            while (answer := _read_frame(stream)) is not None:
                digests, failure, seconds = answer
                with self._lock:
                    reply = self._replies.popleft()
                error = None if failure is None else OSError(failure[0], failure[1])
                reply(digests, error, seconds)
        finally:
            # Its output ended, so it has exited or is exiting; anything else (a frame out
            # of place) is a child that cannot be trusted with the tree any longer.
            self._child.kill()
            status = self._child.wait()
            stream.close()
            with self._lock:
                if self._ended is None:
                    self._ended = f"ended early (exit status {status})"
            self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Answer every batch not answered yet with the reason the child ended."""
        with self._lock:
            waiting = list(self._replies)
            self._replies.clear()
        for reply in waiting:
            reply([], OSError(errno.EPIPE, f"the file writer process {self._ended}"), 0.0)

    def close(self) -> None:
        """End the child once every batch sent is answered, and wait for it (one that never
        said it was ready is killed: it may not be reading at all)."""
        if not self._ready:
            self.kill()
            return
        with self._lock:
            if self._ended is None:
                self._ended = "was closed"
        assert self._child.stdin is not None
        self._child.stdin.close()
        self._reader.join()
        self._child.wait()

    def kill(self) -> None:
        """Stop the child now: nothing it was sent is written after this returns, and every
        batch is answered (not waiting for the reader, which a process the child started
        could keep reading its output)."""
        with self._lock:
            if self._ended is None:
                self._ended = "was stopped"
        self._child.kill()
        self._child.wait()
        assert self._child.stdin is not None
        self._child.stdin.close()  # written through its descriptor: nothing is buffered
        self._fail_waiting()
