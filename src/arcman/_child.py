"""ChildProcess: batches of per-file work done by a second interpreter, beside the GIL.

Reading or writing a tiny file is Python work on one core: threads cannot share it out,
because each of the file's system calls gives up the GIL and a worker then waits to win it
back from the thread that walks the tree or parses the archive (so batches of tiny files are
handled inline, see _workers.TINY_FILE_AVERAGE). A second interpreter has a GIL of its own.
ChildProcess starts one (``python -I -S`` running serve() below), once an operation has shown
that it has batches of tiny files to give it, and sends it batches down a pipe (marshal:
strs, bytes, ints, None, and tuples and lists of them); a reader thread hands each answer, in
order, to its batch's reply. The child runs one of TASKS, a function of this package that the
threads run too, so a batch comes out the same wherever it was handled. The child stops at
the end of its input: closed by close() once every batch has been answered, or by the death
of this process, so it never outlives the operation; kill() stops it at once.

The child imports this module and its task's only, and nothing but the standard library's
core (it is ready in ~20 ms).
"""

from __future__ import annotations

import errno
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

    # A batch's answer, the failure that stopped the child before it answered (or None),
    # and the child's seconds on the batch.
    Reply = Callable[[Any, OSError | None, float], None]

# task name -> (module, function): function(*args, batch) -> the batch's answer.
TASKS = {
    "write": ("arcman._extract.files", "write_batch"),
    "read": ("arcman._create.files", "read_batch"),
    "records": ("arcman._create.files", "record_batch"),
}
_LENGTH = struct.Struct("<I")
# The fewest files worth a batch for the helper: a batch costs its sender and the reader
# thread ~40 us of the GIL (and its answer comes ~90 us after it is sent), and reading or
# writing a tiny file where it is needed ~7 us; short runs of tiny files between larger ones
# (the stdlib tree's tiny batches average 8 files when it is archived) stay where they are.
FEWEST_FILES = 16
# The batch of tiny files at which a helper is started. Starting one costs the caller ~0.6 ms
# and another core ~20 ms before it is ready (batches meanwhile stay with the caller): not
# worth it for the first 64 files, and a tree of 10 small files (one batch) never starts one.
START_AT_BATCH = 2
# Unanswered batches at which the next one stays with the caller. Where the helper is the
# slower side (a disk whose file creation costs more than the parsing: tiny20k extracted to
# this machine's ext4, ~22 us a file in the kernel), the caller would otherwise fill the
# pipe and then wait on its in-flight limit; writing the batch itself shares the work out.
# A few keep the helper busy while the caller handles one (3 and 6 measured the same). Where
# the caller is the slower side, the helper's queue rarely grows that long.
BACKLOG = 4


def _read_frame(stream: IO[bytes]) -> Any:
    """The next marshalled frame, or None at the end of the stream or at bytes that are not
    one (the child is then no helper of ours)."""
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


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve() -> None:
    """The child: argv is the task's name and its arguments; batches come on stdin, and
    each one's answer and time go out on stdout."""
    import importlib
    import signal

    # Ctrl-C reaches the whole process group: the parent decides, and closes or kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module, function = TASKS[sys.argv[1]]
    task = getattr(importlib.import_module(module), function)
    args = sys.argv[2:]
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    out.write(_frame("ready"))
    out.flush()
    while (batch := _read_frame(inp)) is not None:
        started = time.perf_counter()
        answer = task(*args, batch)
        out.write(_frame((answer, time.perf_counter() - started)))
        out.flush()


class ChildProcess:
    def __init__(self, task: str, *args: str) -> None:
        """Start a child running TASKS[task] with ``args``; it is ready() once it has said
        so. Raises OSError if it cannot be started."""
        import subprocess
        import threading
        from collections import deque

        if not sys.executable or getattr(sys, "frozen", False):  # no interpreter to run
            raise OSError(errno.ENOEXEC, "no Python interpreter to start")
        self._task = task
        self._replies: deque[Reply] = deque()
        self._ready = False
        self._ended: str | None = None  # why no more answers will come
        self._lock = threading.Lock()
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = (
            f"import sys; sys.path.insert(0, {package!r}); "
            "from arcman._child import serve; serve()"
        )
        self._child: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code, task, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        try:
            self._reader = threading.Thread(target=self._read, name=f"arcman-{task}-replies")
            self._reader.daemon = True
            self._reader.start()
        except BaseException:
            # Ctrl-C while the reader starts: no caller will ever hold this object to stop
            # the child, which would wait for batches until this process exits.
            with self._child:  # and its pipes closed, and waited for
                self._child.kill()
            raise

    def ready(self) -> bool:
        return self._ready and self._ended is None

    def waiting(self) -> int:
        """How many batches sent have no answer yet."""
        return len(self._replies)

    def submit(self, batch: Any, reply: Reply) -> None:
        """Send a batch; ``reply`` is called on the reader thread with its answer, or with an
        OSError if the child ends first (on this thread if it has ended already)."""
        frame = _frame(batch)
        with self._lock:
            ended = self._ended
            if ended is None:
                self._replies.append(reply)
        if ended is not None:
            reply(None, self._failure(ended), 0.0)
            return
        # Not under the lock: the pipe may be full until the reader has taken an answer.
        assert self._child.stdin is not None
        try:
            _write_all(self._child.stdin.fileno(), frame)
        except OSError:
            # It stopped reading: its end makes the reader answer every batch, this one too.
            self._child.kill()

    def _failure(self, ended: str) -> OSError:
        return OSError(errno.EPIPE, f"the {self._task} helper process {ended}")

    def _read(self) -> None:
        assert self._child.stdout is not None
        stream = self._child.stdout
        try:
            if _read_frame(stream) != "ready":
                return
            self._ready = True
            while (frame := _read_frame(stream)) is not None:
                answer, seconds = frame
                with self._lock:
                    if not self._replies:  # kill() answered them all (or the child is off script)
                        return
                    reply = self._replies.popleft()
                reply(answer, None, seconds)
        finally:
            # Its output ended, so it has exited or is exiting; anything else (a frame out
            # of place) is a child that cannot be trusted with the work any longer.
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
            failure = self._failure(self._ended or "ended")
        for reply in waiting:
            reply(None, failure, 0.0)

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
        """Stop the child now: it does nothing after this returns, and every batch is
        answered (not waiting for the reader, which a process the child started could keep
        reading its output)."""
        with self._lock:
            if self._ended is None:
                self._ended = "was stopped"
        self._child.kill()
        self._child.wait()
        assert self._child.stdin is not None
        self._child.stdin.close()  # written through its descriptor: nothing is buffered
        self._fail_waiting()


class LazyHelper:
    """The helper of one operation, started once it has shown that it has work for one: at
    its START_AT_BATCH-th batch of at least FEWEST_FILES tiny files, unless that is its last.
    A batch also stays with the caller while BACKLOG batches wait for the helper. Where a
    helper cannot be started, or once stopped, every batch stays with the caller."""

    def __init__(self, task: str, *args: str) -> None:
        self._task = task
        self._args = args
        self._process: ChildProcess | None = None
        self._batches = 0
        self._over = False  # no helper now or later: it could not start, or was stopped

    def for_batch(self, files: int, *, last: bool = False) -> ChildProcess | None:
        """The helper to give a batch of ``files`` tiny files to, or None (the caller's)."""
        if files < FEWEST_FILES or self._over:
            return None
        if self._process is None:
            self._batches += 1
            if last or self._batches < START_AT_BATCH:
                return None
            try:
                self._process = ChildProcess(self._task, *self._args)
            except OSError:  # no process left to start, no executable
                self._over = True
                return None
        process = self._process
        return process if process.ready() and process.waiting() < BACKLOG else None

    def stop(self, *, at_once: bool) -> None:
        """close() the helper (every batch is answered), or kill() it (``at_once``)."""
        process, self._process, self._over = self._process, None, True
        if process is not None:
            if at_once:
                process.kill()
            else:
                process.close()
