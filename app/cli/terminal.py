"""What every ``scpln`` command shares at the terminal: the output consoles, the progress display,
and opening the database of ``SCPLN_DB``. It decides nothing about errors (``app.cli.main`` does)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable

from rich.console import Console

console = Console()
err = Console(stderr=True)


class Progress:
    """Stage progress: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, label: str):
        self.label = label
        self.tty = sys.stderr.isatty()
        self._bar = None

    def __enter__(self):
        if self.tty:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=100)
        return self

    def __call__(self, stage: str, percent: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=percent, description=f"{self.label}: {stage}")
        else:
            err.print(f"{self.label}: {stage} ({percent}%)", highlight=False)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


def copy_progress(progress: Progress) -> Callable[[int, int], None]:
    """Page-copy progress as whole percents, reported only when the percent moves."""
    last = [-1]

    def report(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent != last[0]:
            last[0] = percent
            progress("copying", percent)

    return report


def open_store():
    """The plan store on ``SCPLN_DB``, its schema brought to head first."""
    from app import db
    from app.storage.plans import PlanStore

    db.init_db()
    return PlanStore()


def open_engine(init: bool = True):
    """The engine of ``SCPLN_DB``; ``init`` brings the schema to head first (a check or a backup must
    look at the database as it is, so they do not)."""
    from app import db

    if init:
        db.init_db()
    return db.get_engine()


def timestamp(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
