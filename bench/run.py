"""Benchmark arcman against the standard tools on the same inputs, and write the report.

For each corpus and operation the commands run round-robin (arcman, peer 1, peer 2, arcman, ...)
after one untimed warm-up each, ``--repeat`` times (at least ``--quick-rounds`` times when every
warm-up took under ``QUICK_S``: a run of ~80 ms is noisier); medians are reported. The start-up
time of ``arcman --version`` is measured the same way, alternated with the bare interpreter.
Each run is a ``bash -c`` child reaped with ``os.wait4`` so its rusage covers the whole
pipeline: CPU is user+sys of every process, peak RSS is the largest single process
(``ru_maxrss``). Since a pipeline or a process pool spreads memory over several processes, the
summed RSS of the process tree is also sampled with psutil when it is installed.

Usage (full run, ~45 min on 2 cores):
    python bench/run.py --corpora /var/tmp/arcman-bench --python .venv/bin/python
Smoke run (~2 min):
    python bench/run.py --corpora /tmp/arcman-bench-smoke --scale 0.02 --repeat 2

Outputs: bench/results/{REPORT.md,results.json,chart.png} (see report.py, which can also
re-render them from results.json alone).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import corpora  # noqa: E402  (sibling module; bench/ is not a package)
import report  # noqa: E402

OPS = ("create", "extract", "verify")
#: groups whose every warm-up is shorter than this get at least ``--quick-rounds`` rounds
QUICK_S = 1.0
METRICS = ("wall", "cpu", "maxrss", "tree_rss", "size")

try:
    import psutil
except ImportError:  # the harness still works, without the summed-tree RSS column
    psutil = None


@dataclass
class Run:
    """One measured execution of a command."""

    wall: float
    cpu: float
    maxrss: int
    tree_rss: int | None
    size: int | None
    rc: int
    timings: dict[str, float] | None = None
    json_out: dict[str, Any] | None = None


class Trash:
    """Where extracted trees go after their run; large ones are deleted when the benchmark ends.

    ext4 without a journal (this machine's root file system) avoids reusing an inode for 60 s
    after it is freed, 360 s while its inode table block is dirty (fs/ext4/ialloc.c:
    recently_deleted, RECENTCY_MIN + RECENTCY_DIRTY), and looks up every free inode it passes
    on each allocation. Deleting a 7,700-file tree just before the next run therefore made that
    run's file creation scan thousands of freed inodes per file: ``tar xzf`` of the stdlib took
    2.8-3.4 s instead of 1.5-1.9 s, and each tool paid for the tree the previous tool left.
    Trees of fewer than BULK entries cost nothing to free and go at once.

    A tree kept in the trash is written back and its pages dropped from the page cache at
    once (``POSIX_FADV_DONTNEED``). Kept in memory, the trees of a whole run (tens of GB)
    filled the page cache, and with it full every later run spent more kernel time writing:
    ``tar xzf`` of stdlib used 1.1-1.3 s of system time instead of 0.4-0.7 s, arcman 0.9-1.0
    instead of 0.2-0.3, and the last rounds of a group were the slow ones.
    """

    BULK = 1000
    #: ext4's longest window (60 + 300 s) and a margin
    RECENT_S = 370.0

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def take(self, tree: Path) -> None:
        """Remove ``tree`` from its place: moved into the trash if large, deleted if small."""
        if not tree.exists():
            return
        entries = sum(1 + len(files) for _, _, files in os.walk(tree))
        if entries < self.BULK:
            shutil.rmtree(tree)
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._count += 1
        tree.rename(self.root / str(self._count))
        evict(self.root / str(self._count))

    def empty(self, wait: bool, log: Callable[[str], object]) -> None:
        """Delete what the trash holds; with ``wait``, wait until ext4 reuses those inodes."""
        if not self.root.exists():
            return
        log(f"deleting {self.root}" + (f", then waiting {self.RECENT_S:g} s" if wait else ""))
        shutil.rmtree(self.root)
        os.sync()
        if wait:
            time.sleep(self.RECENT_S)


def evict(tree: Path) -> None:
    """Write ``tree`` back and drop its files' pages from the page cache (Linux; elsewhere it
    is only written back)."""
    os.sync()
    if not hasattr(os, "posix_fadvise"):
        return
    for root, _, files in os.walk(tree):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:  # a symlink: it has no pages of its own to drop
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@dataclass
class Tool:
    """A command to benchmark: ``command`` is a bash string run in ``cwd``.

    ``out_dir`` is recreated empty before each run (so arcman sidecars and temp files never
    leak between runs); ``dest`` is removed before each run and created empty when
    ``mkdir_dest`` (tar needs an existing directory, arcman accepts a missing one).
    """

    name: str
    op: str
    command: str
    cwd: Path
    arcman: bool
    counterpart: str | None = None  # arcman tool this peer is compared with
    output: Path | None = None  # file whose size is reported
    out_dir: Path | None = None
    dest: Path | None = None
    mkdir_dest: bool = False
    display: str = ""  # command with paths replaced by placeholders, for the report
    trash: Trash | None = None  # where ``dest`` goes after a run (deleted at once without)

    def prepare(self) -> None:
        """Untimed reset to a fresh state before a run."""
        for d in (self.out_dir, self.dest):
            if d is not None and d.exists():
                shutil.rmtree(d)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True)
        if self.dest is not None:
            # arcman makes DEST itself but, like any atomic rename, needs its parent.
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            if self.mkdir_dest:
                self.dest.mkdir()

    def cleanup(self) -> None:
        """Free disk after a run (extracted trees); archives stay for the next operations."""
        if self.dest is None:
            return
        if self.trash is not None:
            self.trash.take(self.dest)
        elif self.dest.exists():
            shutil.rmtree(self.dest)


@dataclass
class Result:
    """All runs of one tool on one corpus and operation, with their medians."""

    corpus: str
    op: str
    tool: str
    command: str
    arcman: bool
    counterpart: str | None
    status: str = "ok"  # ok | failed | skipped
    note: str = ""
    runs: list[Run] = field(default_factory=list)
    median: dict[str, float | None] = field(default_factory=dict)
    timings_median: dict[str, float] = field(default_factory=dict)

    def summarize(self) -> None:
        """Compute medians over the successful runs."""
        ok = [r for r in self.runs if r.rc == 0]
        for m in METRICS:
            values = [getattr(r, m) for r in ok if getattr(r, m) is not None]
            self.median[m] = statistics.median(values) if values else None
        phases: dict[str, list[float]] = {}
        for r in ok:
            for k, v in (r.timings or {}).items():
                if isinstance(v, int | float):
                    phases.setdefault(k, []).append(float(v))
        self.timings_median = {k: statistics.median(v) for k, v in phases.items()}


class TreeRssSampler:
    """Samples the summed RSS of a process and its descendants in a background thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.peak = 0
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert psutil is not None
        try:
            root = psutil.Process(self._pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def stop(self) -> int | None:
        """Stop sampling; the peak, or None when no sample was taken."""
        self._stop.set()
        self._thread.join()
        return self.peak or None


def gnu_time() -> str | None:
    """Path of GNU time, if installed (Debian package ``time``).

    A child forked from the harness starts from the harness's memory, and Linux carries that
    high-water mark into ``ru_maxrss`` across exec: every ``wait4`` peak would be at least the
    harness's own ~20 MiB. GNU time is a tiny process, so the peak it reports for its child is
    the command's own. Without it, ``ru_maxrss`` from ``wait4`` is used and has that floor.
    """
    path = shutil.which("time")
    if path is None:
        return None
    rc, text = capture([path, "--version"])
    return path if rc == 0 and "GNU" in text else None


def measure(tool: Tool, log_dir: Path, opts: argparse.Namespace) -> Run:
    """Run ``tool`` once (after ``prepare``) and measure wall, rusage and output size."""
    tool.prepare()
    os.sync()  # untimed: no run pays for writing back what the previous one left dirty
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = log_dir / _slug(tool.name)
    stdout_path, stderr_path = stem.with_suffix(".stdout"), stem.with_suffix(".stderr")
    rss_path = stem.with_suffix(".maxrss")
    argv = ["bash", "-c", "set -o pipefail; " + tool.command]
    if opts.gnu_time:
        rss_path.unlink(missing_ok=True)
        argv = [opts.gnu_time, "-f", "%M", "-o", str(rss_path), *argv]
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tool.cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        interval = opts.rss_sample_ms / 1000
        sampler = TreeRssSampler(proc.pid, interval) if psutil and interval > 0 else None
        timer = threading.Timer(opts.timeout, _kill_group, (proc.pid,))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        timed_out = timer.finished.is_set()
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting
    tree_rss = sampler.stop() if sampler else None
    maxrss = usage.ru_maxrss * 1024
    if opts.gnu_time:
        with contextlib.suppress(OSError, ValueError, IndexError):  # empty if killed
            maxrss = int(rss_path.read_text().split()[-1]) * 1024
    run = Run(
        wall=wall, cpu=usage.ru_utime + usage.ru_stime, maxrss=maxrss, tree_rss=tree_rss,
        rc=proc.returncode,
        size=tool.output.stat().st_size if tool.output and tool.output.exists() else None,
    )
    if tool.arcman:
        run.json_out = _parse_json(stdout_path.read_text(errors="replace"))
        if run.json_out is not None:
            if isinstance(run.json_out.get("files"), list):  # 20,000 names x every run: no
                run.json_out["files"] = len(run.json_out["files"])
            if isinstance(run.json_out.get("timings"), dict):
                run.timings = run.json_out["timings"]
    if run.rc != 0:
        why = f"timed out after {opts.timeout:g}s; " if timed_out else ""
        run.json_out = {"stderr_tail": why + _tail(stderr_path)}
    return run


def _kill_group(pid: int) -> None:
    """Timeout: kill the whole process group of a run."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 8) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _parse_json(text: str) -> dict[str, Any] | None:
    """arcman's ``--json`` prints one object; tolerate surrounding noise."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def capture(argv: list[str]) -> tuple[int, str]:
    """Run a short command; (rc, stdout+stderr stripped). Missing programs give rc 127."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return p.returncode, (p.stdout + p.stderr).strip()


def machine_info(python: str) -> dict[str, str]:
    """CPU, memory, OS, interpreter and tool versions for the report header."""
    info: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    models = [ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
              if ln.startswith("model name")]
    info["cpu"] = models[0] if models else platform.processor() or "unknown"
    info["cores"] = str(os.cpu_count())
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    for ln in meminfo.splitlines():
        if ln.startswith("MemTotal:"):
            info["memory"] = f"{int(ln.split()[1]) / 1024**2:.1f} GiB"
    osrel = Path("/etc/os-release")
    pretty = ""
    if osrel.exists():
        for ln in osrel.read_text().splitlines():
            if ln.startswith("PRETTY_NAME="):
                pretty = ln.split("=", 1)[1].strip('"')
    info["os"] = f"{pretty} (kernel {platform.release()})".strip()
    info["load"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    info["python"] = capture([python, "-c", "import sys; print(sys.version.split()[0])"])[1]
    info["python_path"] = python
    for prog, argv in (("tar", ["tar", "--version"]), ("gzip", ["gzip", "--version"]),
                       ("pigz", ["pigz", "--version"]), ("zstd", ["zstd", "--version"])):
        rc, text = capture(argv)
        info[prog] = text.splitlines()[0] if rc == 0 and text else "not installed"
    rc, text = capture([python, "-m", "arcman", "--version"])
    info["arcman"] = text.splitlines()[-1] if rc == 0 and text else "unavailable"
    return info


@dataclass
class Context:
    """What the tool builders need to know about the run."""

    python: str
    cores: int
    corpus: str
    src: Path
    work: Path
    has: dict[str, bool]
    skip: set[str]
    trash: Trash | None = None


def _q(p: Path | str) -> str:
    return shlex.quote(str(p))


def create_tools(ctx: Context) -> tuple[list[Tool], list[str]]:
    """The create commands; also returns notes about skipped peers."""
    py, c = _q(ctx.python), ctx.cores
    tar_pipe = "tar --sort=name -cf - ."
    specs: list[tuple[str, bool, str | None, str, str, list[str]]] = [
        # name, arcman?, counterpart, archive file name, command template, required programs
        ("arcman gz", True, None, "out.tar.gz",
         f"{py} -m arcman create {{src}} -o {{out}} --json -q", ["arcman"]),
        *([("arcman gz --no-parallel", True, "arcman gz", "out.tar.gz",
            f"{py} -m arcman create {{src}} -o {{out}} --no-parallel --json -q", ["arcman"])]
          if ctx.corpus == "small10" else []),  # issue 3: small archives must not pay for the pool
        ("arcman gz -1", True, None, "out.tar.gz",
         f"{py} -m arcman create {{src}} -o {{out}} --level 1 --json -q", ["arcman"]),
        ("arcman zst", True, None, "out.tar.zst",
         f"{py} -m arcman create {{src}} -o {{out}} --json -q", ["arcman"]),
        ("tar|gzip -6", False, "arcman gz", "out.tar.gz",
         f"{tar_pipe} | gzip -6 > {{out}}", ["tar", "gzip"]),
        (f"tar|pigz -p{c} -6", False, "arcman gz", "out.tar.gz",
         f"{tar_pipe} | pigz -p {c} -6 > {{out}}", ["tar", "pigz"]),
        ("tar czf", False, "arcman gz", "out.tar.gz", "tar czf {out} .", ["tar", "gzip"]),
        (f"tar|zstd -T{c} -3", False, "arcman zst", "out.tar.zst",
         f"{tar_pipe} | zstd -q -c -T{c} -3 > {{out}}", ["tar", "zstd"]),
        ("tarfile seq", False, "arcman gz", "out.tar.gz",
         f"{py} {_q(BENCH_DIR / 'tarfile_baseline.py')} {{src}} {{out}}", []),
    ]
    tools: list[Tool] = []
    notes: list[str] = []
    for name, is_arcman, counterpart, fname, template, needs in specs:
        missing = [n for n in needs if not ctx.has.get(n, False)]
        if name in ctx.skip or missing:
            if missing:
                notes.append(f"{name}: skipped, {', '.join(missing)} not available")
            continue
        out_dir = ctx.work / "create" / _slug(name)
        out = out_dir / fname
        tools.append(Tool(
            name=name, op="create", arcman=is_arcman, counterpart=counterpart,
            command=template.format(src=_q(ctx.src), out=_q(out)),
            # Python runs outside the corpus: `-m` puts the cwd first on sys.path, and the
            # stdlib corpus would shadow the interpreter's own modules
            cwd=ctx.work if template.startswith(py) else ctx.src,
            output=out, out_dir=out_dir,
            display=template.format(src="SRC", out=fname.replace("out", "OUT"))
            .replace(py, "PY").replace(_q(BENCH_DIR), "bench"),
        ))
    return tools, notes


def extract_tools(ctx: Context, archives: dict[str, Path]) -> list[Tool]:
    """arcman extract vs ``tar xzf``, each pair on the same archive.

    ``archives`` maps a label ("arcman" for arcman's own .tar.gz, whose manifest allows full
    per-member SHA-256 verification, and "gzip -6" for a foreign archive) to its path.
    """
    py = _q(ctx.python)
    tools: list[Tool] = []
    for label, archive in archives.items():
        suffix = "" if label == "arcman" else f" ({label} archive)"
        arc_name, tar_name = f"arcman extract{suffix}", f"tar xzf{suffix}"
        if ctx.has.get("arcman") and arc_name not in ctx.skip:
            tools.append(Tool(
                name=arc_name, op="extract", arcman=True, cwd=ctx.work,
                command=f"{py} -m arcman extract {_q(archive)} -C {{dest}} --json",
                dest=ctx.work / "extract" / _slug(arc_name), trash=ctx.trash,
                display=f"PY -m arcman extract {label.upper().replace(' ', '')}.tar.gz"
                        " -C DEST --json",
            ))
        if ctx.has.get("tar") and tar_name not in ctx.skip:
            tools.append(Tool(
                name=tar_name, op="extract", arcman=False, counterpart=arc_name, cwd=ctx.work,
                command=f"tar xzf {_q(archive)} -C {{dest}}", mkdir_dest=True,
                dest=ctx.work / "extract" / _slug(tar_name), trash=ctx.trash,
                display=f"tar xzf {label.upper().replace(' ', '')}.tar.gz -C DEST",
            ))
    for t in tools:
        assert t.dest is not None
        t.command = t.command.format(dest=_q(t.dest))
    return tools


def verify_tools(ctx: Context, archive: Path) -> list[Tool]:
    """arcman verify vs ``gzip -t`` on the same archive (arcman's own .tar.gz)."""
    py = _q(ctx.python)
    tools: list[Tool] = []
    if ctx.has.get("arcman") and "arcman verify" not in ctx.skip:
        tools.append(Tool(name="arcman verify", op="verify", arcman=True, cwd=ctx.work,
                          command=f"{py} -m arcman verify {_q(archive)} --json",
                          display="PY -m arcman verify ARCMAN.tar.gz --json"))
    if ctx.has.get("gzip") and "gzip -t" not in ctx.skip:
        tools.append(Tool(name="gzip -t", op="verify", arcman=False, counterpart="arcman verify",
                          cwd=ctx.work, command=f"gzip -t {_q(archive)}",
                          display="gzip -t ARCMAN.tar.gz"))
    return tools


def startup_tools(python: str, cwd: Path) -> list[Tool]:
    """``arcman --version`` against the bare interpreter's start-up (what arcman adds to it)."""
    py = _q(python)
    return [
        Tool(name="arcman --version", op=report.STARTUP, arcman=True, cwd=cwd,
             command=f"{py} -m arcman --version", display="PY -m arcman --version"),
        Tool(name="python -c pass", op=report.STARTUP, arcman=False,
             counterpart="arcman --version", cwd=cwd, command=f"{py} -c pass",
             display="PY -c pass"),
    ]


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


class Bench:
    """Runs the operations of every selected corpus and collects Results."""

    def __init__(self, args: argparse.Namespace, has: dict[str, bool]) -> None:
        self.args = args
        self.has = has
        self.results: list[Result] = []
        self.notes: list[str] = []
        self.trash = Trash(Path(args.corpora) / "_trash")

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def run_group(self, corpus: str, op: str, tools: list[Tool], quick: bool = False) -> None:
        """Warm up each tool once, then round-robin rounds; record Results.

        ``repeat`` rounds, or ``quick_rounds`` if more and the group is ``quick`` or every
        warm-up took under QUICK_S: short runs need more samples for a stable median.
        """
        a = self.args
        logs = Path(a.corpora) / "_work" / corpus / "logs" / op
        results = {t.name: Result(corpus, op, t.name, t.display, t.arcman, t.counterpart)
                   for t in tools}
        live: list[Tool] = []
        slowest_warm_up = 0.0
        for t in tools:
            self.log(f"{corpus} {op}: warm-up {t.name}")
            warm = measure(t, logs, a)
            t.cleanup()
            if warm.rc != 0:
                res = results[t.name]
                res.status = "failed"
                res.note = f"warm-up exit {warm.rc}: {(warm.json_out or {}).get('stderr_tail', '')}"
                res.runs.append(warm)
                self.log(f"  FAILED: {res.note}")
            else:
                live.append(t)
                slowest_warm_up = max(slowest_warm_up, warm.wall)
        short = quick or slowest_warm_up < QUICK_S
        rounds = max(a.repeat, a.quick_rounds) if short else a.repeat
        for rep in range(rounds):
            for t in live:
                run = measure(t, logs, a)
                t.cleanup()
                results[t.name].runs.append(run)
                status = "" if run.rc == 0 else f"  exit {run.rc}"
                self.log(f"{corpus} {op} {rep + 1}/{rounds} {t.name}: {run.wall:.3f}s{status}")
        for res in results.values():
            if res.status == "ok" and any(r.rc != 0 for r in res.runs):
                bad = next(r for r in res.runs if r.rc != 0)
                res.note = f"some runs failed: {(bad.json_out or {}).get('stderr_tail', '')}"
            res.summarize()
            self.results.append(res)

    def ensure_archive(self, tool: Tool | None) -> Path | None:
        """``tool``'s archive: the one its last create run left, else built once now (untimed)."""
        if tool is None or tool.output is None:
            return None
        if not tool.output.exists():
            self.log(f"building the {tool.name} archive (untimed)")
            if measure(tool, Path(self.args.corpora) / "_work" / "logs", self.args).rc != 0:
                return None
        return tool.output

    def run_corpus(self, name: str) -> None:
        """create, then extract and verify on archives made by create."""
        a = self.args
        src = corpora.ensure(Path(a.corpora), name, a.scale, log=self.log)
        work = Path(a.corpora) / "_work" / name
        shutil.rmtree(work, ignore_errors=True)  # no stale archive from an earlier run
        work.mkdir(parents=True)
        ctx = Context(python=a.python, cores=a.cores, corpus=name, src=src, work=work,
                      has=self.has, skip=set(a.skip), trash=self.trash)
        # archive builders always exist (even with --skip) so extract/verify have inputs
        all_creates, notes = create_tools(replace(ctx, skip=set()))
        if name == a.selected[0]:
            self.notes.extend(notes)
        by_name = {t.name: t for t in all_creates}
        if "create" in a.ops:
            self.run_group(name, "create", [t for t in all_creates if t.name not in ctx.skip])
        arcman_gz = self.ensure_archive(by_name.get("arcman gz"))
        gzip6 = self.ensure_archive(by_name.get("tar|gzip -6"))
        if "extract" in a.ops:
            archives: dict[str, Path] = {}
            if arcman_gz is not None and "arcman" in a.extract_from:
                archives["arcman"] = arcman_gz
            if gzip6 is not None and "gzip6" in a.extract_from:
                archives["gzip -6"] = gzip6
            self.run_group(name, "extract", extract_tools(ctx, archives))
        if "verify" in a.ops:
            target = arcman_gz or gzip6
            if target is not None:
                if target != arcman_gz:
                    self.notes.append(f"{name} verify: no arcman archive, checked tar|gzip -6's")
                self.run_group(name, "verify", verify_tools(ctx, target))
        if not a.keep_work:
            shutil.rmtree(work, ignore_errors=True)

    def run_startup(self) -> None:
        """Time ``arcman --version`` (issue 3: well under 150 ms), at least quick_rounds times."""
        work = Path(self.args.corpora) / "_work" / report.STARTUP
        work.mkdir(parents=True, exist_ok=True)
        tools = [t for t in startup_tools(self.args.python, work) if t.name not in self.args.skip]
        self.run_group(report.STARTUP, report.STARTUP, tools, quick=True)
        if not self.args.keep_work:
            shutil.rmtree(work, ignore_errors=True)


DEFAULT_ROOT = os.environ.get("ARCMAN_BENCH_DIR", "/var/tmp/arcman-bench")


def available_peers() -> dict[str, bool]:
    """Which of the peers' programs are on PATH."""
    return {prog: shutil.which(prog) is not None for prog in ("tar", "gzip", "pigz", "zstd")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--corpora", default=DEFAULT_ROOT,
                    help="directory for corpora and scratch archives (default: %(default)s)")
    ap.add_argument("--only", help=f"corpora subset, comma-separated: {','.join(corpora.SPECS)}")
    ap.add_argument("--ops", default=",".join(OPS), help="operations (default: %(default)s)")
    ap.add_argument("--scale", type=float, default=1.0, help="corpus scale for smoke runs")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (default: %(default)s)")
    ap.add_argument("--quick-rounds", type=int, default=15,
                    help=f"minimum rounds of groups whose warm-ups all took < {QUICK_S:g} s and "
                         "of the start-up measurement (default: %(default)s)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter that runs `-m arcman` and the tarfile baseline")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                    help="threads given to pigz/zstd (default: os.cpu_count())")
    ap.add_argument("--skip", default="", help="tool names to leave out, comma-separated")
    ap.add_argument("--extract-from", default="arcman,gzip6",
                    help="archives to extract: arcman (own .tar.gz, full SHA-256 verification) "
                         "and/or gzip6 (foreign tar|gzip -6 archive); default: %(default)s")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    ap.add_argument("--rss-sample-ms", type=float, default=50,
                    help="process-tree RSS sampling period, 0 to disable (needs psutil)")
    ap.add_argument("--results", type=Path, default=BENCH_DIR / "results",
                    help="where REPORT.md, results.json and chart.png go")
    ap.add_argument("--keep-work", action="store_true", help="keep scratch archives")
    args = ap.parse_args(argv)
    args.selected = corpora.parse_names(args.only)
    args.ops = [o for o in OPS if o in args.ops.split(",")]
    args.skip = [s.strip() for s in args.skip.split(",") if s.strip()]
    args.extract_from = args.extract_from.split(",")
    if not 0 < args.scale <= 1 or args.repeat < 1 or args.quick_rounds < 1:
        ap.error("need 0 < --scale <= 1, --repeat >= 1 and --quick-rounds >= 1")
    if os.sep in args.python:  # commands run inside the corpus: a relative path would not resolve
        args.python = os.path.abspath(args.python)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write results.json, REPORT.md and chart.png."""
    args = parse_args(argv)
    args.gnu_time = gnu_time()
    started = time.time()
    # An installed arcman runs from the byte code pip compiled; a checkout under
    # PYTHONDONTWRITEBYTECODE (set on this machine) would compile its sources on every run,
    # ~30 ms of each command's start-up, so the harness compiles it first, as pip would.
    capture([args.python, "-c", "import compileall, os, arcman; "
             "compileall.compile_dir(os.path.dirname(arcman.__file__), quiet=1)"])
    info = machine_info(args.python)
    has = available_peers()
    has["arcman"] = info["arcman"] != "unavailable"
    bench = Bench(args, has)
    if not has["arcman"]:
        rc, text = capture([args.python, "-m", "arcman", "--version"])
        bench.notes.append(f"arcman unavailable with {args.python} (exit {rc}): {text[-300:]}")
    if args.gnu_time is None:
        bench.notes.append("GNU time not installed (apt package `time`): peak RSS comes from "
                           "wait4 and cannot be below the harness's own RSS")
    if psutil is None:
        bench.notes.append("psutil not installed: no process-tree RSS column")
    bench.trash.empty(wait=True, log=bench.log)  # left by an interrupted run
    if has["arcman"]:
        bench.run_startup()
    for name in args.selected:
        bench.run_corpus(name)
    bench.trash.empty(wait=False, log=bench.log)
    info["load_end"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    data: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "duration_s": round(time.time() - started, 1),
            "scale": args.scale, "repeat": args.repeat, "cores": args.cores,
            "quick_rounds": args.quick_rounds, "quick_s": QUICK_S,
            "ops": args.ops, "machine": info, "argv": sys.argv[1:],
            "rss_sample_ms": args.rss_sample_ms if psutil else 0,
            "peak_rss_source": "GNU time %M" if args.gnu_time else "wait4 ru_maxrss",
            "deferred_deletion": True,  # see Trash
            "evicted_trash": True,  # see Trash
        },
        "corpora": {
            n: {**corpora.manifest_of(Path(args.corpora), n, args.scale),
                "description": corpora.SPECS[n].describe}
            for n in args.selected
        },
        "results": [asdict(r) for r in bench.results],
        "notes": bench.notes,
    }
    data["targets"] = report.evaluate_targets(data)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    report.render(data, args.results)
    bench.log(f"done in {time.time() - started:.0f}s: {args.results / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
