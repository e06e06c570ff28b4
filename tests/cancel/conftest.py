"""Fixtures for the cancel and deadline tests.

* ``journal``: the test's journal directory (created by the first run);
* ``side``: the side-channel file tasks report to (see ``cancel_flows``);
* ``cli``: ``cli(*args, code=N)`` runs ``replay-engine --journal J *args`` in a
  real subprocess, with a timeout, and returns it;
* ``start_run``: starts ``Engine.run`` (or ``resume``) in a child interpreter
  that prints the outcome as JSON (status, seconds) when it returns.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import child_env

from .cancel_flows import SIDE_ENV

Cli = Callable[..., "subprocess.CompletedProcess[str]"]
StartRun = Callable[..., "subprocess.Popen[str]"]

RUNNER = r"""
import json, sys, time
from replay_engine import Engine
from tests.cancel import cancel_flows
journal, run_id, name, inputs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
engine = Engine(journal)
started = time.monotonic()
run = engine.run(getattr(cancel_flows, name), json.loads(inputs), run_id=run_id)
print(json.dumps({"status": run.status, "seconds": time.monotonic() - started,
                  "ended": time.time()}), flush=True)
"""


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def side(tmp_path: Path) -> Path:
    return tmp_path / "side.jsonl"


@pytest.fixture
def cli(journal: Path, side: Path) -> Cli:
    def run(
        *args: str, code: int | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "replay_engine._cli",
                "--journal",
                str(journal),
                *args,
            ],
            capture_output=True,
            text=True,
            env=child_env(**{SIDE_ENV: str(side)}),
            timeout=timeout,
            check=False,
        )
        if code is not None:
            assert proc.returncode == code, (
                f"{args}: exit {proc.returncode}, expected {code}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    return run


@pytest.fixture
def start_run(journal: Path, side: Path) -> Iterator[StartRun]:
    children: list[subprocess.Popen[str]] = []

    def start(run_id: str, name: str, inputs: str = "{}") -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(journal), run_id, name, inputs],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(**{SIDE_ENV: str(side)}),
        )
        children.append(proc)
        return proc

    yield start
    for proc in children:  # a failed test must not leave a child behind
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # reaped, pipes closed
