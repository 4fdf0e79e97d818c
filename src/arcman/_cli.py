"""The ``arcman`` command line: argument parsing, output and exit codes over the library.

Exit codes: 0 ok; 1 verification failed; 2 usage or configuration error; 3 unsafe or corrupt
input; 4 source problem; 5 destination problem; 6 done, but files were skipped as asked;
70 internal error; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any, NoReturn

EXIT_OK, EXIT_VERIFY, EXIT_USAGE, EXIT_UNSAFE = 0, 1, 2, 3
EXIT_SOURCE, EXIT_DEST, EXIT_SKIPPED, EXIT_INTERNAL = 4, 5, 6, 70
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

FORMATS = ("tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst", "zip")


class _Terminated(BaseException):
    """SIGTERM, raised on the main thread so that cleanup runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise _Terminated()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("arcman")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    common.add_argument("-q", "--quiet", action="store_true", help="only errors")
    common.add_argument("--threads", type=int, metavar="N", help="worker threads")
    common.add_argument("--no-parallel", action="store_true", help="run every stage on one thread")

    parser = argparse.ArgumentParser(
        prog="arcman",
        description="Fast, parallel, verified and atomic archives.",
        epilog="exit codes: 0 ok, 1 verification failed, 2 usage, 3 unsafe or corrupt input, "
        "4 source problem, 5 destination problem, 6 files skipped, 130/143 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"arcman {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = sub.add_parser(
        "create", parents=[common], help="archive a directory",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  arcman create build/ -o app.tar.zst\n"
        "  arcman create src/ -o src.tar.gz --level 1 --exclude '*.pyc'",
    )
    create.add_argument("source", help="directory to archive")
    create.add_argument("-o", "--output", required=True, help="archive to write")
    create.add_argument("--format", choices=FORMATS, help="format (default: from the extension)")
    create.add_argument("--level", type=int, metavar="N", help="compression level")
    create.add_argument(
        "--exclude", action="append", default=[], metavar="PATTERN",
        help="gitignore-style pattern to leave out (repeatable)",
    )
    create.add_argument("--follow-symlinks", action="store_true", help="archive link targets")
    create.add_argument("--max-file-size", type=int, metavar="BYTES", help="refuse larger files")
    create.add_argument(
        "--skip-unreadable", action="store_true",
        help="skip (and report) files that cannot be read instead of failing",
    )
    create.add_argument("--reproducible", action="store_true",
                        help="fixed mtimes/owners/modes: same tree, same bytes")
    create.add_argument("--no-checksum", action="store_true", help="no <archive>.sha256 sidecar")
    create.add_argument("--no-meta", action="store_true", help="no <archive>.meta sidecar")

    limits = argparse.ArgumentParser(add_help=False)
    group = limits.add_argument_group("extraction limits (defaults suit a Raspberry Pi)")
    group.add_argument("--max-total-size", type=int, metavar="BYTES", help="default 4 GiB")
    group.add_argument("--max-member-size", type=int, metavar="BYTES", help="default 2 GiB")
    group.add_argument("--max-members", type=int, metavar="N", help="default 200000")
    group.add_argument("--max-ratio", type=float, metavar="R", help="default 250")
    group.add_argument("--no-limits", action="store_true",
                       help="lift every limit not set explicitly (trusted archives only)")

    extract = sub.add_parser(
        "extract", parents=[common, limits], help="verify and extract an archive atomically",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  arcman extract app.tar.zst -C /opt/app\n"
        "  arcman extract app.tar.zst -C /opt/app --replace",
    )
    extract.add_argument("archive")
    extract.add_argument("-C", "--directory", required=True, dest="dest", help="destination")
    extract.add_argument("--replace", action="store_true", help="swap out a non-empty DEST")
    extract.add_argument("--no-verify", action="store_true", help="skip manifest/sidecar checks")

    verify = sub.add_parser("verify", parents=[common, limits], help="check an archive's integrity",
                            epilog="example: arcman verify app.tar.gz")
    verify.add_argument("archive")

    listing = sub.add_parser("list", parents=[common], help="list an archive's members",
                             epilog="example: arcman list -l app.tar.gz")
    listing.add_argument("archive")
    listing.add_argument("-l", "--long", action="store_true", help="type, mode, size, sha256")
    return parser


def _config(args: argparse.Namespace) -> Any:
    from . import ArchiveConfig, CompressionFormat, ExtractionLimits

    values: dict[str, Any] = {}
    if args.threads is not None:
        values["thread_pool_size"] = args.threads
    if args.no_parallel:
        values["enable_parallelization"] = False
    if args.command == "create":
        values.update(
            compression_level=args.level,
            follow_symlinks=args.follow_symlinks,
            max_file_size=args.max_file_size,
            on_error="skip" if args.skip_unreadable else "fail",
            reproducible=args.reproducible,
            create_checksums=not args.no_checksum,
            include_metadata=not args.no_meta,
            format=CompressionFormat(args.format) if args.format else None,
        )
        if args.exclude:
            values["exclude_patterns"] = [*ArchiveConfig().exclude_patterns, *args.exclude]
    if args.command in ("extract", "verify"):
        base = ExtractionLimits(None, None, None, None) if args.no_limits else ExtractionLimits()
        given = {
            "max_total_size": args.max_total_size,
            "max_member_size": args.max_member_size,
            "max_members": args.max_members,
            "max_compression_ratio": args.max_ratio,
        }
        values["limits"] = dataclasses.replace(
            base, **{k: v for k, v in given.items() if v is not None}
        )
    return ArchiveConfig(**values)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError("unreachable")


def _run(args: argparse.Namespace) -> int:
    from . import ArchiveManager

    config = _config(args)
    out: dict[str, Any]
    code = EXIT_OK
    with ArchiveManager(config) as manager:
        if args.command == "create":
            meta = manager.create_archive(args.source, args.output)
            out = meta.to_dict()
            if meta.skipped:
                code = EXIT_SKIPPED
                for line in meta.skipped:
                    print(f"arcman: skipped {line}", file=sys.stderr)
            text = (
                f"created {args.output}: {meta.file_count} files, "
                f"{_human(meta.uncompressed_size)} -> {_human(meta.compressed_size)}"
            )
        elif args.command == "extract":
            meta = manager.extract_archive(
                args.archive, args.dest, verify_integrity=not args.no_verify, replace=args.replace
            )
            out = meta.to_dict()
            text = (
                f"extracted {meta.file_count} files ({_human(meta.uncompressed_size)}) "
                f"to {args.dest}, verified by {meta.verification}"
            )
        elif args.command == "verify":
            meta = manager.verify_archive(args.archive)
            out = meta.to_dict()
            how = (
                "every member's SHA-256 matches the manifest"
                if meta.verification == "manifest"
                else "container checks only (no arcman manifest)"
            )
            text = f"{args.archive}: OK, {meta.file_count} files; {how}"
        else:
            entries = manager.list_archive(args.archive)
            out = {"archive": args.archive, "entries": [e.to_dict() for e in entries]}
            if args.long:
                text = "\n".join(
                    f"{e.type:7s} {e.mode:04o} {e.size:>12d} {e.sha256 or '-':64s} {e.name}"
                    for e in entries
                )
            else:
                text = "\n".join(e.name for e in entries)
        if args.json:
            out["stats"] = manager.get_stats()
    if args.json:
        print(json.dumps(out))
    elif text and not (args.quiet and args.command != "list"):
        print(text)
    return code


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.ERROR if args.quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(args.verbose, 2)
    ]
    logging.basicConfig(level=level, format="arcman: %(levelname)s [%(threadName)s] %(message)s")
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("arcman: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("arcman: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:
        code = _exit_code(exc)
        if code == EXIT_INTERNAL:
            logging.getLogger("arcman").debug("internal error", exc_info=True)
            print(f"arcman: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        else:
            print(f"arcman: error: {exc}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
