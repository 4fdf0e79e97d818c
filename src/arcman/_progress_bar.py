"""The CLI's live progress bar (rich, on stderr) fed by the library's byte-based callback."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from ._config import ProgressCallback

ItemCallback = Callable[[str], None]

if TYPE_CHECKING:
    from rich.console import Console


@contextlib.contextmanager
def progress_bar(
    description: str, stream: IO[str], *, enabled: bool, console: Console | None = None
) -> Iterator[tuple[ProgressCallback, ItemCallback] | None]:
    """Yield the ``progress_callback`` and ``progress_item_callback`` that drive a bar, or None
    when it should stay silent.

    The bar shows bytes done of total, throughput, ETA and the member being processed.
    ``enabled`` is False for -q, and a stream that is not a terminal gets nothing, so logs and
    pipes stay clean. The callbacks are safe from any thread (the library serializes them and
    rich locks its own state).
    """
    if not enabled or (console is None and not stream.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        # Member names are data, not rich markup: "sub[/]x" would fail to render.
        TextColumn("{task.fields[item]}", style="dim", markup=False),
        console=console or Console(file=stream),
        transient=False,
    )
    task = bar.add_task(description, total=None, item="")

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)  # 0: not known (a stream)

    def reached(name: str) -> None:
        bar.update(task, item=name)

    with bar:
        yield update, reached
