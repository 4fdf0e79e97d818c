"""The ``arcman`` command line: argument parsing, output and exit codes over the library.

Exit codes: 0 ok; 1 verification failed, or ``diff`` found differences; 2 usage or
configuration error; 3 unsafe or corrupt input; 4 source problem; 5 destination problem;
6 done, but files were skipped as asked; 70 internal error; 130 interrupted (Ctrl-C);
141 stdout closed early (``arcman list x | head``); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys

# typing, json and logging are not imported at the top: --version and --help exit in
# parse_args, and the three were ~9 ms of their start-up (the commands need them anyway).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from types import FrameType
    from typing import IO, Any, NoReturn

    from ._metadata import ArchiveEntry

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_UNSAFE = 0, 1, 2, 3
EXIT_SOURCE, EXIT_DEST, EXIT_SKIPPED, EXIT_INTERNAL = 4, 5, 6, 70
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED = 130, 141, 143

FORMATS = ("tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip")
SHA256_HELP = (
    "the archive's expected SHA-256, from a channel you trust: checked instead of its .sha256 "
    "sidecar (for - the only check of the archive as a whole)"
)


class _Terminated(BaseException):
    """SIGTERM, raised on the main thread so that cleanup runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated()


def _version() -> str:
    # The package's own constant (pyproject reads it too): importlib.metadata costs ~20 ms.
    from . import __version__

    return __version__


def _examples(*lines: str) -> dict[str, Any]:
    return {
        "formatter_class": argparse.RawDescriptionHelpFormatter,
        "epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
    }


def build_parser() -> argparse.ArgumentParser:
    # Every command's output options; the archive commands' (common) also their work's.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    output.add_argument("-v", "--verbose", action="count", default=0,
                        help="-vv: an internal error's traceback (warnings are shown anyway)")
    output.add_argument("-q", "--quiet", action="store_true", help="only errors, no progress bar")
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument("--threads", type=int, metavar="N",
                         help="worker threads (env ARCMAN_THREADS, config 'threads')")
    common = argparse.ArgumentParser(add_help=False, parents=[output, threads])
    common.add_argument("--no-parallel", action="store_true", help="run every stage on one thread")
    common.add_argument("--stats", action="store_true", help="print timing statistics after")

    excludes = argparse.ArgumentParser(add_help=False)
    excludes.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN",
        help="gitignore-style pattern to leave out (repeatable; adds to the config's excludes)",
    )
    excludes.add_argument("--exclude-from", action="append", default=[], metavar="FILE",
                          help="read gitignore-style patterns from FILE (repeatable)")
    excludes.add_argument("--gitignore", action="store_true",
                          help="honour the .gitignore files git reads for the tree: nested ones, "
                               "and those above it in its repository")

    parser = argparse.ArgumentParser(
        prog="arcman",
        description="Fast, parallel, verified and atomic archives.",
        epilog="exit codes: 0 ok, 1 verification failed (diff: trees differ), 2 usage or "
        "configuration, 3 unsafe or corrupt input, 4 source problem, 5 destination problem, "
        "6 files skipped, 70 internal error (a bug), 130/143 interrupted, 141 stdout closed "
        "early",
    )
    parser.add_argument("--version", action="version", version=f"arcman {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser(
        "create", parents=[common, excludes], help="archive a directory",
        **_examples(
            "arcman create build/ -o app.tar.zst",
            "arcman create src/ -o src.tar.gz --level 1 --exclude '*.pyc'",
            "arcman create . -o release.zip --gitignore --reproducible",
            "arcman create . -o release.tar.gz --gitignore --dry-run",
            "arcman create build/ -o - --format tar.zst | ssh pi arcman extract - -C /opt/app",
        ),
    )
    create.add_argument("source", help="directory to archive")
    create.add_argument("-o", "--output", help="archive to write (not needed with --dry-run); "
                        "- for standard output, with --format")
    create.add_argument("--format", choices=FORMATS,
                        help="format of an output without a known extension (must agree "
                        "with a known one); env ARCMAN_FORMAT and config 'format' only where "
                        "the extension does not say")
    create.add_argument("--level", type=int, metavar="N",
                        help="compression level (env ARCMAN_LEVEL, config 'level')")
    create.add_argument("--dry-run", action="store_true",
                        help="list what would be archived and why anything is left out")
    create.add_argument("--follow-symlinks", action="store_true", help="archive link targets")
    create.add_argument("--hard-dereference", action="store_true",
                        help="archive each name of a hard-linked file as a copy, not a link "
                        "(as tar --hard-dereference; a zip always does)")
    create.add_argument("--max-file-size", type=int, metavar="BYTES", help="refuse larger files")
    create.add_argument(
        "--skip-unreadable", action="store_true",
        help="skip (and report) files that cannot be read instead of failing",
    )
    create.add_argument("--reproducible", action="store_true", default=None,
                        help="fixed mtimes/owners/modes: same tree, same bytes "
                        "(SOURCE_DATE_EPOCH sets the mtime)")
    create.add_argument("--no-checksum", action="store_true", help="no <archive>.sha256 sidecar")
    create.add_argument("--no-meta", action="store_true", help="no <archive>.meta sidecar")

    limits = argparse.ArgumentParser(add_help=False)
    group = limits.add_argument_group(
        "extraction limits (defaults suit a Raspberry Pi; 0 means no limit)"
    )
    group.add_argument("--max-total-size", type=int, metavar="BYTES", help="default 4 GiB")
    group.add_argument("--max-member-size", type=int, metavar="BYTES", help="default 2 GiB")
    group.add_argument("--max-members", type=int, metavar="N", help="default 200000")
    group.add_argument("--max-ratio", type=float, metavar="R", help="default 250")
    group.add_argument("--no-limits", action="store_true",
                       help="lift every limit not given by a --max-* option, those of the "
                       "environment and config file too (trusted archives only)")

    extract = sub.add_parser(
        "extract", parents=[common, limits], help="verify and extract an archive atomically",
        **_examples(
            "arcman extract app.tar.zst -C /opt/app",
            "arcman extract app.tar.zst -C /opt/app --replace --keep-previous",
            "ssh pi arcman extract - -C /opt/app --replace < app.tar.zst",
            "arcman extract node-v22.1.0-linux-arm64.tar.xz -C /opt/node --strip-components 1",
        ),
    )
    extract.add_argument("archive", help="the archive file, or - for standard input")
    extract.add_argument("-C", "--directory", required=True, dest="dest", help="destination")
    extract.add_argument("--replace", action="store_true", help="swap out a non-empty DEST")
    extract.add_argument("--keep-previous", action="store_true",
                         help="with --replace: keep the replaced tree as DEST.prev for rollback")
    extract.add_argument("--no-verify", action="store_true", help="skip manifest/sidecar checks")
    extract.add_argument("--sha256", metavar="HEX", help=SHA256_HELP)
    extract.add_argument("--strip-components", type=int, default=0, metavar="N",
                         help="drop N leading components from each name, as tar does (a "
                         "release tarball's app-1.2/); a file above that depth is an error")

    verify = sub.add_parser("verify", parents=[common, limits], help="check an archive's integrity",
                            **_examples("arcman verify app.tar.gz",
                                        "arcman verify app.tar.gz --json"))
    verify.add_argument("archive", help="the archive file, or - for standard input")
    verify.add_argument("--sha256", metavar="HEX", help=SHA256_HELP)

    listing = sub.add_parser("list", parents=[common], help="list an archive's members",
                             **_examples("arcman list app.tar.gz", "arcman list -l app.tar.gz"))
    listing.add_argument("archive", help="the archive file, or - for standard input")
    listing.add_argument("-l", "--long", action="store_true", help="type, mode, size, sha256")

    diff = sub.add_parser(
        "diff", parents=[common, excludes],
        help="compare an archive with a directory (exit 0 same, 1 differs)",
        **_examples("arcman diff app.tar.zst /opt/app",
                    "arcman diff app.tar.zst build/ --json"),
    )
    diff.add_argument("archive", help="the archive file, or - for standard input")
    diff.add_argument("directory")
    diff.add_argument("--strip-components", type=int, default=0, metavar="N",
                      help="compare the tree that extract --strip-components N makes")
    diff.add_argument("--reproducible", action="store_true", default=None,
                      help="compare modes as create --reproducible stores them (only a file's "
                      "executable bit): for a reproducible archive and its source tree")

    rollback = sub.add_parser(
        "rollback", parents=[output], help="swap DEST with DEST.prev (undo a deploy)",
        **_examples("arcman extract v2.tar.zst -C /opt/app --replace --keep-previous",
                    "arcman rollback /opt/app      # back to v1; run again to return to v2"),
    )
    rollback.add_argument("dest")

    config = sub.add_parser(
        "config", parents=[output, threads],
        help="show the effective configuration and its sources",
        **_examples("arcman config", "arcman config src/ --json",
                    "ARCMAN_THREADS=2 arcman config"),
    )
    config.add_argument("directory", nargs="?", default=".",
                        help="where to look for arcman.toml / pyproject.toml (default: .)")

    completion = sub.add_parser(
        "completion", help="print a shell completion script",
        **_examples("arcman completion bash > ~/.local/share/bash-completion/completions/arcman",
                    "arcman completion zsh > ~/.zfunc/_arcman"),
    )
    completion.add_argument("shell", choices=("bash", "zsh", "tcsh"))
    completion.set_defaults(quiet=False, verbose=0)
    return parser


def _completion_parser(shtab: Any) -> argparse.ArgumentParser:
    """The parser with its path arguments marked for shtab: without the marks, the scripts
    complete commands and options but no file or directory names."""
    parser = build_parser()
    kinds = {"archive": shtab.FILE, "output": shtab.FILE, "exclude_from": shtab.FILE,
             "source": shtab.DIRECTORY, "dest": shtab.DIRECTORY, "directory": shtab.DIRECTORY}
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in subparsers[0].choices.values():
        for action in sub._actions:
            if action.dest in kinds:
                setattr(action, "complete", kinds[action.dest])  # noqa: B010 - shtab's hook
    return parser


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (None means "not given")."""
    from ._excludes import read_pattern_file
    from ._gitignore import gitignore_patterns

    flags: dict[str, Any] = {}
    if getattr(args, "threads", None) is not None:
        flags["threads"] = args.threads
    if args.command == "create":
        for key, value in (("level", args.level), ("format", args.format)):
            if value is not None:
                flags[key] = value
    if args.command in ("create", "diff"):
        if args.reproducible is not None:
            flags["reproducible"] = args.reproducible
        # The last pattern that matches decides: the tree's .gitignore files come first, so
        # that the command line's own patterns override them, as in git.
        overrides = [pair for path in args.exclude_from for pair in read_pattern_file(path)]
        overrides.extend((p, "--exclude") for p in args.exclude)
        excludes = (
            gitignore_patterns(_tree(args), [p for p, _ in overrides]) if args.gitignore else []
        )
        excludes.extend(overrides)
        if excludes:
            flags["excludes"] = excludes
    if args.command in ("extract", "verify"):
        given = {
            "max_total_size": args.max_total_size,
            "max_member_size": args.max_member_size,
            "max_members": args.max_members,
            "max_compression_ratio": args.max_ratio,
        }
        for name, value in given.items():
            if value is not None:
                flags[f"limits.{name}"] = value
            elif args.no_limits:
                flags[f"limits.{name}"] = None  # no limit
    return flags


def _tree(args: argparse.Namespace) -> str:
    """The directory whose configuration applies: the tree being archived or compared."""
    return str(getattr(args, "source", None) or getattr(args, "directory", None) or ".")


def _settings(args: argparse.Namespace) -> Any:
    from ._settings import resolve

    if args.command == "config" and not os.path.isdir(args.directory):
        from . import SourceError

        # Not the defaults for a directory that is not there (a typo would look configured).
        raise SourceError(f"{args.directory!r} is not a directory", args.directory)
    return resolve(_tree(args), _flags(args))


def _config(args: argparse.Namespace, settings: Any) -> Any:
    from ._settings import output_format, to_config

    extra: dict[str, Any] = {}
    if args.no_parallel:
        extra["enable_parallelization"] = False
    # Only create writes a format; its output's extension decides over a configured format
    # (without -o, a dry run, the configured one stands).
    extra["format"] = output_format(settings, args.output) if args.command == "create" else None
    if args.command == "create":
        extra.update(
            follow_symlinks=args.follow_symlinks,
            hard_links=not args.hard_dereference,
            max_file_size=args.max_file_size,
            on_error="skip" if args.skip_unreadable else "fail",
            create_checksums=not args.no_checksum,
            include_metadata=not args.no_meta,
        )
    return to_config(settings, **extra)


def _files(n: int) -> str:
    return f"{n} file" if n == 1 else f"{n} files"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _show_config(settings: Any) -> tuple[dict[str, Any], str]:
    import json  # see the note at the imports

    out = {key: {"value": s.value, "source": s.source} for key, s in settings.items()}
    width = max(len(key) for key in settings)
    text = "\n".join(
        f"{key:<{width}}  {json.dumps(s.value):<28}  {s.source}" for key, s in settings.items()
    )
    return out, text


def _stats_table(stats: dict[str, Any]) -> str:
    """get_stats() as a rich table, rendered to text (so --stats works in pipes too)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="arcman statistics")
    table.add_column("phase / counter")
    table.add_column("value", justify="right")
    for key in ("operations_total", "files", "bytes_in", "bytes_out", "throughput_bytes_per_s"):
        table.add_row(key, str(stats[key]))
    table.add_row("wall time", f"{stats['wall_time']['total']:.3f} s")
    for phase, summary in stats["phases"].items():
        if summary["count"]:
            table.add_row(f"  {phase}", f"{summary['total']:.3f} s")
    console = Console(width=60, force_terminal=False, color_system=None)
    with console.capture() as capture:
        console.print(table)
    return capture.get().rstrip("\n")


def _dry_run(
    args: argparse.Namespace, settings: Any, config: Any
) -> tuple[dict[str, Any], str, int]:
    """The plan, and the exit code ``create`` would give (6 if it would skip paths)."""
    from ._excludes import plan

    result = plan(args.source, config, settings["excludes"].origins, args.output)
    if args.gitignore:
        from ._gitignore import warn_of_tracked

        warn_of_tracked(args.source, (path for path, _, _, _ in result.included))
    out = {
        "source": args.source,
        "included": [
            {"path": p, "type": k, "size": s, **({} if t is None else {"target": t})}
            for p, k, s, t in result.included
        ],
        "excluded": [{"path": p, "reason": r} for p, r in result.excluded],
        "skipped": [{"path": p, "reason": r} for p, r in result.skipped],
        "total_bytes": result.total_bytes,
    }
    lines = [f"+ {_visible(p)}" + _planned_link(k, t) for p, k, _, t in result.included]
    lines += [f"- {_visible(p)}  ({_visible(r)})" for p, r in result.excluded]
    lines += [f"! {_visible(p)}  (skipped: {_visible(r)})" for p, r in result.skipped]
    lines.append(
        f"would archive {_files(sum(k == 'file' for _, k, _, _ in result.included))} "
        f"({_human(result.total_bytes)}), leave out {len(result.excluded)}"
        + (f", skip {len(result.skipped)}" if result.skipped else "")
    )
    return out, "\n".join(lines), EXIT_SKIPPED if result.skipped else EXIT_OK


def _operate(
    args: argparse.Namespace, manager: Any, progress: Any
) -> tuple[dict[str, Any], str | Iterable[str], int]:
    """Run one archive command; return its JSON object, its text and its exit code."""
    on_bytes, on_item = progress if progress is not None else (None, None)
    config = manager.config.replace(progress_callback=on_bytes, progress_item_callback=on_item)
    code = EXIT_OK
    if args.command == "create":
        if not args.output:
            raise ValueError("create needs -o/--output (or --dry-run)")
        meta = manager.create_archive(args.source, _output(args), config)
        if args.gitignore:
            from ._gitignore import warn_of_tracked

            warn_of_tracked(args.source, meta.files)
        if meta.skipped:
            code = EXIT_SKIPPED
            # The library logs each skip as a warning; -q hides warnings, never skips.
            if args.quiet:
                for line in meta.skipped:
                    print(f"arcman: skipped {_visible(line)}", file=sys.stderr)
        text = (
            f"created {args.output}: {_files(meta.file_count)}, "
            f"{_human(meta.uncompressed_size)} -> {_human(meta.compressed_size)}"
        )
        if args.output == "-":  # no .sha256 sidecar: the checksum to compare on arrival
            text += f", sha256 {meta.checksum_sha256}"
        return meta.shallow_dict(), text, code
    if args.command == "extract":
        if args.keep_previous and not args.replace:
            raise ValueError("--keep-previous needs --replace")
        keeps = args.keep_previous and _has_a_tree(args.dest)
        meta = manager.extract_archive(
            _archive(args), args.dest, config, not args.no_verify,
            replace=args.replace, keep_previous=args.keep_previous, expected_sha256=args.sha256,
            strip_components=args.strip_components,
        )
        out = meta.shallow_dict()
        how = (
            f"verified by {meta.verification}"
            if meta.verification != "none"
            else "not verified (--no-verify)"
        )
        if args.sha256:
            how += " and the SHA-256 given"
        text = (
            f"extracted {_files(meta.file_count)} ({_human(meta.uncompressed_size)}) "
            f"to {args.dest}, {how}"
        )
        if keeps:
            out["previous"] = _previous(args.dest)
            text += f"; previous tree kept as {out['previous']}"
        return out, text, code
    if args.command == "verify":
        meta = manager.verify_archive(_archive(args), config, expected_sha256=args.sha256)
        how = (
            "every member's SHA-256 matches the manifest"
            if meta.verification == "manifest"
            else "container checks only (no arcman manifest)"
        )
        return meta.shallow_dict(), f"{args.archive}: OK, {_files(meta.file_count)}; {how}", code
    if args.command == "diff":
        from ._diff import diff_tree

        if args.strip_components < 0:
            raise ValueError("--strip-components must be 0 or more")
        entries = manager.list_archive(
            _archive(args), config, strip_components=args.strip_components
        )
        result = diff_tree(entries, args.directory, config)
        text = "\n".join(map(_visible, result.lines())) if not result.same else "no differences"
        out = {"archive": args.archive, "directory": args.directory, **result.to_dict()}
        return out, text, EXIT_OK if result.same else EXIT_VERIFY
    entries = manager.list_archive(_archive(args), config)
    # Lines made as they are printed, and the entries streamed as JSON: a listing of a big
    # archive is never one string or one list of dicts in memory.
    lines = (
        (f"{e.type:8s} {e.mode:04o} {e.size:>12d} {e.sha256 or '-':64s} {_visible(e.name)}"
         + _link_suffix(e) for e in entries)
        if args.long
        else (_visible(e.name) for e in entries)
    )
    return {"archive": args.archive, "entries": entries}, lines, code


def _planned_link(kind: str, target: str | None) -> str:
    """What a link create would archive points to: a hard link is stored once, as a link."""
    if target is None:
        return ""
    return f"  (hard link to {_visible(target)})" if kind == "hardlink" else (
        f" -> {_visible(target)}"
    )


def _link_suffix(entry: ArchiveEntry) -> str:
    """What a link points to, as ``tar tv`` shows it."""
    if entry.target is None:
        return ""
    return f" link to {_visible(entry.target)}" if entry.type == "hardlink" else (
        f" -> {_visible(entry.target)}"
    )


def _archive(args: argparse.Namespace) -> str | IO[bytes]:
    """The archive argument: a path, or ``-`` for standard input (``ssh pi arcman extract -
    -C /opt/app < app.tar.zst`` unpacks an archive that the Pi never stores)."""
    if args.archive != "-":
        return str(args.archive)
    # Started with it closed (`<&-`), Python has no sys.stdin at all.
    _standard(sys.stdin, "archive", "input", closed=sys.stdin is None, advice="pipe one in")
    return sys.stdin.buffer  # read through its descriptor if it can stall (source.py)


def _output(args: argparse.Namespace) -> str | IO[bytes]:
    """create's -o: a path, or ``-`` for standard output (``arcman create app -o - --format
    tar.zst | ssh pi arcman extract - -C /opt/app``); the result line then goes to stderr."""
    if args.output != "-":
        return str(args.output)
    # Closed at start (`>&-`), it is /dev/null (see main()), where the archive would vanish.
    closed = getattr(sys.stdout, "name", None) == os.devnull
    _standard(sys.stdout, "output", "output", closed=closed, advice="redirect it")
    return sys.stdout.buffer  # written through its descriptor if it can stall (create.py)


def _standard(stream: Any, role: str, kind: str, *, closed: bool, advice: str) -> None:
    """Check that ``stream`` can carry an archive: neither closed nor a terminal."""
    where = f"the {role} '-' is standard {kind}, which is"
    if closed:
        raise ValueError(f"{where} closed: {advice}")
    if stream.isatty():
        raise ValueError(f"{where} a terminal: {advice}")


def _writes_stdout(args: argparse.Namespace) -> bool:
    return args.command == "create" and getattr(args, "output", None) == "-"


def _reader_gone() -> int:
    """The reader stopped early (`arcman list x | head`): end quietly with the status a shell
    reports for a tool killed by SIGPIPE (128 + 13), as tar or ls would under pipefail; 0
    would claim the whole output was delivered. stdout goes to /dev/null so that flushing the
    rest of it at exit does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _has_a_tree(dest: str) -> bool:
    """Whether DEST is a non-empty directory: only such a tree is swapped out and kept as
    DEST.prev; a missing or empty DEST is simply replaced, and nothing is kept."""
    try:
        return not os.path.islink(dest) and bool(os.listdir(dest))
    except OSError:
        return False


def _previous(dest: str) -> str:
    from ._extract.commit import previous_path

    return previous_path(dest)


_BAR_LABELS = {"create": "archiving", "extract": "extracting", "verify": "verifying"}


def _run(args: argparse.Namespace) -> int:
    if args.command == "completion":
        import shtab

        print(shtab.complete(_completion_parser(shtab), shell=args.shell))
        return EXIT_OK

    from . import ArchiveManager
    from ._progress_bar import progress_bar

    settings = _settings(args)
    text: str | Iterable[str] = ""
    code = EXIT_OK
    out: dict[str, Any]
    # -q drops an archive command's result line; what was asked for (a listing, a diff, the
    # configuration, --stats's table) is still printed.
    result_shown = not args.quiet or args.command in ("list", "diff", "config")
    if args.command == "config":
        out, text = _show_config(settings)
    elif args.command == "rollback":
        ArchiveManager().rollback(args.dest)
        out = {"rolled_back": args.dest, "previous": _previous(args.dest)}
        text = f"rolled back {args.dest}; {out['previous']} now holds the tree it replaced"
    elif args.command == "create" and args.dry_run:
        out, text, code = _dry_run(args, settings, _config(args, settings))
    else:
        label = _BAR_LABELS.get(args.command)
        with ArchiveManager(_config(args, settings)) as manager:
            show = bool(label) and not args.quiet
            with progress_bar(label or "", sys.stderr, enabled=show) as cb:
                out, text, code = _operate(args, manager, cb)
            stats = manager.get_stats()
        if args.json:
            out["stats"] = stats
        elif args.stats:
            table = _stats_table(stats)
            text = itertools.chain(_lines(text), [table]) if result_shown else table
            result_shown = True
    report = sys.stderr if _writes_stdout(args) else sys.stdout  # stdout holds the archive
    if args.json:
        from ._metadata import json_pieces

        report.writelines(json_pieces(out))
        report.write("\n")
    elif result_shown:
        report.writelines(line + "\n" for line in _lines(text))
    return code


def _lines(text: str | Iterable[str]) -> Iterable[str]:
    """A command's text as lines: a str is one message (nothing if empty), else its lines."""
    if isinstance(text, str):
        return [text] if text else []
    return text


def _exit_code(exc: BaseException) -> int:
    from . import (
        CorruptArchiveError,
        DestinationError,
        IntegrityError,
        SourceError,
        UnsafeMemberError,
        UnsupportedFormatError,
    )

    if isinstance(exc, UnsafeMemberError | CorruptArchiveError):
        return EXIT_UNSAFE
    if isinstance(exc, IntegrityError):
        return EXIT_VERIFY
    if isinstance(exc, UnsupportedFormatError | ValueError):
        return EXIT_USAGE
    if isinstance(exc, SourceError):
        return EXIT_SOURCE
    if isinstance(exc, DestinationError):
        return EXIT_DEST
    return EXIT_INTERNAL


def _clean_after_signal(args: argparse.Namespace) -> None:
    """The operation was cut short: remove whatever temporaries of ours are left beside its
    output, with further Ctrl-C/SIGTERM ignored so the cleanup itself is not cut short."""
    from ._atomic import clean_stale

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    targets: list[str] = []
    if args.command == "create" and args.output not in (None, "-"):  # None: a dry run
        targets = [args.output, args.output + ".sha256", args.output + ".meta"]
    elif args.command in ("extract", "rollback"):
        from ._extract.commit import previous_path

        targets = [args.dest, previous_path(args.dest)]
    for target in targets:
        clean_stale(target, including_own=True)


_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def _visible(text: str) -> str:
    """``text`` with control characters escaped (a newline as ``\\x0a``): a name holding one
    would otherwise forge a line of the report, or move the terminal's cursor."""
    return text.translate(_CONTROLS)


def _escape_controls(record: Any) -> bool:
    """A logging filter: the message as ``_visible`` shows it."""
    record.msg, record.args = _visible(record.getMessage()), None
    return True


def _set_up_output(args: argparse.Namespace) -> None:
    """Logging at the level asked for, and stdout/stderr that print any name."""
    import logging  # after parse_args: see the note at the imports

    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(args.verbose, 2)
    ]
    logging.basicConfig(level=level, format="arcman: %(levelname)s [%(threadName)s] %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_escape_controls)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            # Names are bytes on POSIX: one that is not UTF-8 is printed back as its bytes, as
            # ls prints it, instead of failing to encode in a UTF-8 locale (stdout) or showing
            # as Python's "\udce9" in a warning (stderr).
            stream.reconfigure(errors="surrogateescape")


def main(argv: Sequence[str] | None = None) -> int:
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            # Closed (`arcman ... >&-`): Python then has no stream at all. What would have been
            # written there is dropped, as by a shell's 2>/dev/null, instead of failing the run.
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - for the process's life
    try:
        args = build_parser().parse_args(argv)
        _set_up_output(args)
    except KeyboardInterrupt:  # Ctrl-C while starting: nothing done yet, nothing to clean
        print("arcman: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    previous = signal.getsignal(signal.SIGTERM)
    previous_int = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        code = _run(args)
        sys.stdout.flush()  # so that a reader gone away shows here, not as Python exits
        return code
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        _clean_after_signal(args)
        print("arcman: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        _clean_after_signal(args)
        print("arcman: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        if isinstance(exc.__cause__, BrokenPipeError) and _writes_stdout(args):
            return _reader_gone()  # `create -o - | head`: a DestinationError to the library
        code = _exit_code(exc)
        if code == EXIT_INTERNAL:
            import logging  # loaded by _set_up_output

            logging.getLogger("arcman").debug("internal error", exc_info=True)
            print(f"arcman: internal error: {type(exc).__name__}: {_visible(str(exc))}",
                  file=sys.stderr)
        else:
            print(f"arcman: error: {_visible(str(exc))}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
