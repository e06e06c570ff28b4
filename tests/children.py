"""Child interpreters for tests that need a second process.

Three ways to start one, all on this checkout (``tests.helpers.child_env``):

* :func:`run_child` runs a snippet to the end and returns its stdout;
* :func:`start_python` starts a snippet and returns the ``Popen`` (stdin,
  stdout and stderr piped);
* :func:`start_child` / :func:`crash_child` run or resume a process in a
  child that SIGKILLs itself when the journal reaches ``kill_at`` events.

A crash child wraps ``Store.append``, ``Store.append_group`` and
``Store.create_run`` (call the original, then count). Nothing about the engine
is mocked: the child writes a real LMDB journal and dies for real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.engine.flows import SIDE_ENV
from tests.helpers import child_env


def run_child(code: str, *args: str, timeout: float = 60) -> str:
    """Run ``code`` in a fresh interpreter (``sys.argv[1:]`` = args); its stdout.

    Raises:
        AssertionError: the child failed; its stderr is in the message.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{proc.stderr}"
    return proc.stdout


def start_python(code: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """A child interpreter running ``code`` with ``sys.argv[1:] == args``."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )


CHILD = r"""
import json, os, signal, sys
from replay_engine import Engine
from replay_engine._run import process_ref as _process_ref
from replay_engine._store import store as _store

mode, journal, run_id, ref, inputs, durability, kill_at = sys.argv[1:8]
kill_at = int(kill_at)

if kill_at > 0:
    original_append = _store.Store.append
    original_create = _store.Store.create_run

    def append(self, *args, **kwargs):
        result = original_append(self, *args, **kwargs)
        if result.first_seq + result.count >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def create_run(self, *args, **kwargs):
        original_create(self, *args, **kwargs)
        if 1 >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    original_group = _store.Store.append_group

    def append_group(self, items):
        # Several runs in one commit (a run's sub-runs): any that reaches it.
        results = original_group(self, items)
        for r in results:
            if not isinstance(r, Exception) and r.first_seq + r.count >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return results

    _store.Store.append = append
    _store.Store.create_run = create_run
    _store.Store.append_group = append_group

engine = Engine(journal, durability=durability)
if mode == "run":
    run = engine.run(_process_ref.load(ref), json.loads(inputs), run_id=run_id)
else:
    run = engine.resume(run_id)
print(json.dumps({"status": run.status, "result": run.result}))
"""


def start_child(
    mode: str,
    journal: Path,
    run_id: str,
    *,
    ref: str = "",
    inputs: Any = None,
    durability: str = "fsync",
    kill_at: int = 0,
    side: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start a child that runs (``mode="run"``) or resumes a process."""
    extra = dict(env or {})
    if side is not None:
        extra[SIDE_ENV] = str(side)
    return start_python(
        CHILD,
        mode,
        str(journal),
        run_id,
        ref,
        json.dumps(inputs),
        durability,
        str(kill_at),
        **extra,
    )


def finish_child(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def crash_child(mode: str, journal: Path, run_id: str, **kwargs: Any) -> int:
    """Run a child that must die of SIGKILL; return its pid."""
    proc = start_child(mode, journal, run_id, **kwargs)
    code, output = finish_child(proc)
    assert code == -signal.SIGKILL, f"child was not killed (exit {code}):\n{output}"
    return proc.pid
