"""The one progress display of every command (rich): a bar with a count and the time left.

:func:`progress_display` gives the bare :class:`rich.progress.Progress` with the house
columns (the demo adds a task per seed to it); :func:`progress_bar` is the common case,
one bar of ``total`` items that the caller advances.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


def progress_display(*, transient: bool = True, elapsed: bool = False) -> Any:
    """A :class:`rich.progress.Progress` with the label, the bar, ``done/total`` and the time left
    (``elapsed``: the time spent instead, for stages whose length is not known ahead)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    clock = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), clock, transient=transient
    )


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """One bar of ``total`` items while the block runs; yields ``advance(n)``.

    Disabled (other processes of a launch, tests, workers whose output goes to a log),
    ``advance`` does nothing and nothing is drawn.
    """
    if not enabled:
        yield lambda n: None
        return
    display = progress_display()
    task = display.add_task(label, total=total)
    with display:
        yield lambda n: display.advance(task, n)
