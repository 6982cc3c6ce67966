"""The phase runner of the rollback and the roll-forward: idempotent phases recorded in a state file.

Owns the state file (completed phases, their results and the repair's progress, written atomically
after each step) and running a phase unless an earlier, unfinished run of the same command recorded it,
so a command killed at any point is simply run again. Also the crash points the tests kill it at.

It knows nothing of what the phases do (``commands`` and ``repair`` say that) and touches no database.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import ScplnError
from app.storage.db import now_ms

#: Test hook. ``SCPLN_CRASH_AT=<phase>`` kills the rollback with SIGKILL after that phase did its work
#: and before the state file records it (the widest window); ``repair:<n>`` after the n-th version of
#: this run's repair was written; ``forward:<phase>`` the same for the roll-forward.
CRASH_ENV = "SCPLN_CRASH_AT"

Progress = Callable[[str, int], None]


class State:
    """The state file: completed phases and per-phase results, written atomically. A finished (or
    missing, or unreadable) state file starts a new run."""

    def __init__(self, path: Path, kind: str, dry_run: bool):
        self.path = path
        self.dry_run = dry_run
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = {}
        if not isinstance(data, dict) or data.get("kind") != kind or data.get("finished"):
            data = {"kind": kind, "started_at": now_ms(), "phases": {}, "finished": False}
        self.data = data

    def done(self, phase: str) -> bool:
        return phase in self.data["phases"]

    def result(self, phase: str) -> Any:
        return self.data["phases"].get(phase)

    def complete(self, phase: str, result: Any = True) -> None:
        self.data["phases"][phase] = result
        self.save()

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        if self.dry_run:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)  # a resumed run never reads half a state file


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def phase_runner(
    state: State,
    done: list[str],
    skipped: list[str],
    phases: tuple[str, ...],
    step: Progress,
    prefix: str = "",
) -> Callable[[str, Callable[[], Any]], Any]:
    """``phase(name, fn)``: run ``fn`` unless the state file says the phase is done (then return the
    result it recorded); record it after it completes. ``done``/``skipped`` collect the phase names."""

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        step(name, int(100 * phases.index(name) / len(phases)))
        if state.done(name):
            skipped.append(name)
            return state.result(name)
        try:
            result = fn()
        except ScplnError as exc:  # say where it stopped and that running it again continues from there
            exc.message = (
                f"{exc.message} (stopped in phase {name!r}; fix the cause and run the same command again: "
                "it continues from this phase)"
            )
            exc.args = (exc.message,)
            raise
        crash_point(f"{prefix}{name}")
        state.complete(name, result)
        done.append(name)
        return result

    return phase
