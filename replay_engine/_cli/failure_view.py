"""Where a failed run failed: the process's file and line, the task and its key.

A run's failure is recorded with its formatted traceback (``ErrorInfo``).
Its last frame outside the engine's own package is the line of the process
(or of the code it called) that raised or awaited the failing task; a
``TaskFailed`` names the task and its key in its message. These are read
back from text the journal holds, so they are only ever printed (escaped by
the caller), never followed.
"""

from __future__ import annotations

import os.path
import re
from typing import Any

#: How many lines of the recorded traceback ``status`` shows.
TRACEBACK_TAIL = 8

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
_TASK = re.compile(r"\(task '(?P<task>.+)' at key (?P<key>[0-9.]+)\)\s*$")
# os.path, not pathlib: status imports this, and pathlib costs start-up.
_ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + "/"


def place(traceback: str) -> str | None:
    """``file:line in func`` of the last frame outside replay-engine, if any."""
    found = None
    for line in traceback.splitlines():
        match = _FRAME.match(line)
        if match and not match["file"].startswith(_ENGINE_DIR):
            found = f"{match['file']}:{match['line']} in {match['func']}"
    return found


def failed_task(message: str) -> tuple[str, str] | None:
    """``(task, key)`` of a ``TaskFailed`` message, else None."""
    match = _TASK.search(message)
    return None if match is None else (match["task"], match["key"])


def traceback_tail(traceback: str, lines: int = TRACEBACK_TAIL) -> list[str]:
    """The end of a recorded traceback, ``lines`` lines at most (none when empty).

    Without the engine's own frames (the call machinery between the process
    and the error it raised: noise to the reader, and it would push the
    process's lines out of the tail), and with the first line kept when
    lines are cut, so that what is shown still reads as a traceback. The
    whole text stays in ``status --json``.
    """
    kept: list[str] = []
    engine_frame = False
    for line in traceback.rstrip().splitlines():
        match = _FRAME.match(line)
        if match:
            engine_frame = match["file"].startswith(_ENGINE_DIR)
        elif not line.startswith("    "):  # a frame's source and carets are indented
            engine_frame = False
        if not engine_frame:
            kept.append(line)
    if len(kept) <= lines:
        return kept
    return [kept[0], "  ...", *kept[len(kept) - lines + 2 :]]


def failure_fields(error: Any) -> dict[str, Any]:
    """``at``, ``task`` and ``key`` of a recorded error, for JSON and tables."""
    fields: dict[str, Any] = {"at": place(getattr(error, "traceback", "") or "")}
    found = failed_task(error.message)
    fields["task"], fields["key"] = found if found else (None, None)
    return fields


def failure_lines(error: Any) -> list[str]:
    """Lines under ``error: …`` in ``run``/``resume``: where, and which task."""
    fields = failure_fields(error)
    out = []
    if fields["at"]:
        out.append(f"  at {fields['at']}")
    if fields["task"]:
        out.append(f"  task {fields['task']} at key {fields['key']}")
    return out
