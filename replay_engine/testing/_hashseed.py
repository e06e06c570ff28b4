"""Replaying a journal in fresh interpreters with other ``PYTHONHASHSEED`` values.

Within one interpreter the iteration order of a set of strings never changes,
so no in-process probe can see a process that depends on it. A resume on
another machine (or after a restart) runs with another hash seed. This probe
records nothing: each child opens the reference journal and replays it
(``Engine.replay``, nothing dispatched), and reports whether the process made
the same calls and returned the same result.

The process must be importable by its ``module:qualname``; otherwise the
probe is skipped (and says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .. import ProcessImportError, load_process
from .._testing_seam import process_reference

_MARK = "@@replay-engine-hashseed@@"

_CHILD = f"""
import json, sys
import journal_format as jf
from replay_engine import Engine, NonDeterminismError

path, run_id, ref = sys.argv[1:4]
with Engine(path, durability="process") as engine:
    try:
        snap = engine.replay(run_id, process=ref)
    except NonDeterminismError as exc:
        out = {{"diverged": True, "key": exc.key, "recorded": exc.recorded,
               "replayed": exc.replayed, "message": str(exc)}}
        diverged = exc
    else:
        diverged = None
    if diverged is None:
        result = None
        if snap.process_status == "completed":
            from replay_engine.testing._trace import value_digest
            result = value_digest(snap.result)
        out = {{"diverged": False, "status": snap.process_status, "result": result}}
if diverged is not None and diverged.seq is not None and diverged.key:
    from replay_engine.testing._schedule import replayed_call
    now = replayed_call(path, run_id, ref, diverged.key, diverged.seq)
    if now is not None:
        out["probe"] = {{"kind": now.kind, "name": now.name, "args": now.args.hex(),
                        "payload": jf.encode_payload(now.args_value).hex()}}
print("{_MARK}" + json.dumps(out))
"""


def importable_reference(process: Callable[..., Any]) -> str | None:
    """``module:qualname`` if another interpreter can import ``process`` by it."""
    ref = process_reference(process)
    if "<locals>" in ref or "<lambda>" in ref:
        return None
    try:
        loaded = load_process(ref)
    except ProcessImportError:
        return None
    return ref if loaded is process else None


def seeds(count: int) -> list[int]:
    """``count`` hash seeds, none of them this interpreter's (when it is fixed)."""
    own = os.environ.get("PYTHONHASHSEED", "")
    return [s for s in range(1, count + 2) if str(s) != own][:count]


Children = list[tuple[int, "subprocess.Popen[str]"]]


def start(path: str, run_id: str, ref: str, hash_seeds: list[int]) -> Children:
    """Start one replaying child per seed; they run while the caller goes on."""
    env = dict(os.environ)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *paths])
    return [
        (
            seed,
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, path, run_id, ref],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**env, "PYTHONHASHSEED": str(seed)},
            ),
        )
        for seed in hash_seeds
    ]


def stop(children: Children) -> None:
    """Kill children still running (the check already failed elsewhere)."""
    for _, child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def collect(
    children: Children, timeout: float = 120
) -> list[tuple[int, dict[str, Any] | str]]:
    """Each child's report, or a string saying why it has none."""
    reports: list[tuple[int, dict[str, Any] | str]] = []
    for seed, child in children:
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            reports.append((seed, f"the child timed out after {timeout}s"))
            continue
        for line in out.splitlines():
            if line.startswith(_MARK):
                reports.append((seed, json.loads(line[len(_MARK) :])))
                break
        else:
            tail = (err.strip().splitlines() or ["(no output)"])[-1]
            reports.append((seed, f"the child exited {child.returncode}: {tail}"))
    return reports
