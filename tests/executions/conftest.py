"""Fixtures and child launchers for the execution tests.

``run_in_child`` starts ``engine.run``/``resume`` of a process of
``exec_flows`` in a real child interpreter, which prints one JSON line (the
run's status, pending keys and stats) when it returns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine.errors import RunNotFoundError
from tests.children import start_python
from tests.helpers import child_env

from .exec_flows import SIDE_ENV, side_lines

CHILD = r"""
import dataclasses, json, sys
from replay_engine import Engine
from replay_engine.errors import RunNotFoundError
mode, journal, run_id, ref, inputs = sys.argv[1:6]
engine = Engine(journal, durability="process")
if mode == "run":
    run = engine.run(ref, json.loads(inputs), run_id=run_id)
elif mode == "iterate":
    run = engine.iterate(run_id, why="wake")
else:
    run = engine.resume(run_id)
print(json.dumps({"status": run.status, "result": run.result,
                  "pending": run.pending, "stats": dataclasses.asdict(run.stats)}))
"""

WAIT_SECONDS = 30.0


def cli(journal: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """``replay-engine --journal J *args`` in a real subprocess (bounded)."""
    proc = subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == code, (
        f"{args}: exit {proc.returncode}, expected {code}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc


def cli_json(journal: Path, *args: str, code: int = 0) -> Any:
    """The one JSON document ``cli(..., "--json")`` prints."""
    return json.loads(cli(journal, *args, "--json", code=code).stdout)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side.jsonl"


@pytest.fixture
def engine(journal: Path) -> Iterator[Engine]:
    journal.mkdir(parents=True, exist_ok=True)
    eng = Engine(str(journal), durability="process")
    yield eng
    eng.close()


def run_in_child(
    mode: str,
    journal: Path,
    run_id: str,
    process: str = "",
    inputs: Any = None,
    *,
    side: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``run``/``resume`` of ``exec_flows:process`` in a child interpreter."""
    ref = f"tests.executions.exec_flows:{process}" if process else ""
    extra = {SIDE_ENV: str(side)} if side is not None else {}
    return start_python(
        CHILD, mode, str(journal), run_id, ref, json.dumps(inputs), **extra
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """The child's JSON line, once it has exited 0."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{out}\n{err}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def wait_until(
    what: str, check: Callable[[], bool], proc: subprocess.Popen[str] | None = None
) -> None:
    """Poll ``check`` (bounded); fail naming ``what`` if it never holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"child ended before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def requested(engine: Engine, run_id: str) -> set[str]:
    """Keys with an ``effect_requested`` event in the run's journal (if it exists)."""
    try:
        stored = engine.events(run_id)
    except RunNotFoundError:
        return set()
    return {
        jf.key_bytes_to_text(s.event.key)
        for s in stored
        if isinstance(s.event, jf.EffectRequested)
    }


def killed_in_gate(journal: Path, side: Path, gate: Path) -> int:
    """Run ``counted_then_gated`` as run ``r`` in a child; SIGKILL it in the gate.

    The child is killed while its third task is in flight (two completed), so
    the journal holds what a crash leaves. Returns the child's pid.
    """
    proc = run_in_child(
        "run", journal, "r", "counted_then_gated", {"gate": str(gate)}, side=side
    )
    wait_until(
        "the gated task to run",
        lambda: any(line["what"] == "gate" for line in side_lines(side)),
        proc,
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return proc.pid
