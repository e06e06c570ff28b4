"""The static determinism checker: what breaks replay, found without running.

``replay-engine check MODULE:FUNC`` on the command line; from Python::

    from replay_engine.check import check_process

    for finding in check_process("flows:process"):
        print(finding)      # file:line:col: RE101 ... (use ctx.now())

The rules (``RE101`` wall-clock reads … ``RE112`` shared writes in parallel
branches) are listed in the docstring of ``replay_engine._check.checker``.
The check is a heuristic; ``replay_engine.testing.assert_deterministic`` is
the proof.
"""

from __future__ import annotations

from ._check.checker import (
    Finding,
    check_process,
    main_check,
)

__all__ = ["Finding", "check_process", "main_check"]
