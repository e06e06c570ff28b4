"""The static determinism checker: what breaks replay, found without running.

``replay-engine check MODULE:FUNC`` on the command line; from Python::

    from replay_engine.check import check_process

    for finding in check_process("flows:process"):
        print(finding)      # file:line:col: RE101 ... (use ctx.now())

The rules (``RE101`` wall-clock reads … ``RE112`` shared writes in parallel
branches; ``RE113`` a task called directly, ``RE114`` a ctx call never
awaited, ``RE115`` module-level state written by a process, ``RE116`` a hazard
inside a helper in another module of your package, with the chain of calls)
are listed in the docstring of ``replay_engine._check.checker``.
The check is a heuristic; ``replay_engine.testing.assert_deterministic`` is
the proof.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ._api.executing import load_process
from ._check.checker import Finding, check_function

__all__ = ["Finding", "check_process", "main_check"]


def check_process(ref_or_fn: str | Callable[..., Any]) -> list[Finding]:
    """Statically check a process function (``"module:qualname"`` or the function).

    Returns:
        The findings, sorted by file, line and column (empty when clean).

    Raises:
        ProcessImportError: a reference that cannot be imported.
        ValueError: the function's source is unavailable.
    """
    fn = load_process(ref_or_fn) if isinstance(ref_or_fn, str) else ref_or_fn
    return check_function(fn)[0]


def main_check(ref: str, as_json: bool) -> int:
    """Print the findings for ``ref`` (rich text, or one JSON document); 0 clean, 1 not.

    Raises:
        ProcessImportError: ``ref`` cannot be imported (a usage error, exit 2).
        ValueError: the function's source is unavailable.
    """
    findings, functions = check_function(load_process(ref))
    if as_json:
        print(
            json.dumps(
                {
                    "process": ref,
                    "ok": not findings,
                    "functions": functions,
                    "findings": [f.to_dict() for f in findings],
                }
            )
        )
        return 1 if findings else 0
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False)
    for f in findings:
        console.print(
            f"[bold]{escape(f.file)}:{f.line}:{f.col}[/]: [red]{f.code}[/]"
            f" {escape(f.message)}"
        )
        console.print(f"    [green]use:[/] {escape(f.replacement)}")
    checked = f"checked {len(functions)} function{'s' * (len(functions) != 1)}"
    if findings:
        console.print(
            f"[red]{len(findings)} determinism hazard{'s' * (len(findings) != 1)}"
            f"[/] in {escape(ref)} ({checked})"
        )
        return 1
    console.print(f"[green]no determinism hazards[/] in {escape(ref)} ({checked})")
    return 0
