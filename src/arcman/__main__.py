"""``python -m arcman`` and the ``arcman`` script (``run``)."""

import sys


def run() -> int:
    """The command line. Ctrl-C while its modules load (~20 ms) ends it as Ctrl-C during a
    command does, not with Python's traceback; the interpreter's own start-up before this
    is out of reach."""
    try:
        from ._cli import main
    except KeyboardInterrupt:
        sys.stderr.write("arcman: interrupted\n")
        return 130  # _cli's EXIT_INTERRUPTED, which could not be imported
    return main()


if __name__ == "__main__":
    sys.exit(run())
