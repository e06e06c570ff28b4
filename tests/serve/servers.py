"""The server, workers and CLI as real subprocesses on a real journal.

Every child runs in its own session and is killed with its group at
teardown; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import child_env

FLOWS = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "replay_engine._cli"]
TIMEOUT = 120.0  # generous: twenty CLI posters start at once on a loaded machine


def env(**extra: str) -> dict[str, str]:
    out = child_env(FLOWS, **extra)
    out.pop("REPLAY_ENGINE_TOKEN", None)
    out.update(extra)
    return out


def cli(journal: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``replay-engine --journal J ARGS`` to its end (bounded)."""
    return subprocess.run(
        [*CLI, "--journal", str(journal), *args],
        env=env(**extra),
        cwd=FLOWS,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def start_run(journal: Path, process: str, run_id: str, inputs: Any) -> None:
    """``run`` a process until it waits (exit 3)."""
    done = cli(
        journal, "run", f"serve_flows:{process}", "--input", json.dumps(inputs),
        "--run-id", run_id,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr


def kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)  # reaps it and closes its pipes


@dataclass
class Server:
    """A ``replay-engine serve`` child and a client for it."""

    proc: subprocess.Popen[str]
    url: str
    client: httpx.Client

    def stop(self) -> int:
        """SIGTERM, then its exit code (it must stop cleanly and soon)."""
        self.client.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(TIMEOUT)
        finally:
            kill_group(self.proc)


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + TIMEOUT
    line = ""
    while not line and time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
    return line


@contextlib.contextmanager
def server(
    journal: Path,
    *args: str,
    token: str | None = None,
    command: Sequence[str] = ("serve",),
) -> Iterator[Server]:
    """``serve --port 0 --json ARGS`` on ``journal``, ready; stopped after."""
    extra = {} if token is None else {"REPLAY_ENGINE_TOKEN": token}
    proc = subprocess.Popen(
        [*CLI, "--journal", str(journal), *command, "--port", "0", "--json", *args],
        env=env(**extra),
        cwd=FLOWS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = _first_line(proc)
        assert line, (
            f"the server did not start: {proc.stderr.read() if proc.stderr else ''}"
        )
        doc = json.loads(line)
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=doc["url"], headers=headers, timeout=TIMEOUT) as c:
            yield Server(proc, doc["url"], c)
    finally:
        kill_group(proc)


@contextlib.contextmanager
def worker(journal: Path, *processes: str) -> Iterator[subprocess.Popen[str]]:
    """``replay-engine worker PROCESSES`` on ``journal``; killed after."""
    proc = subprocess.Popen(
        [
            *CLI,
            "--journal",
            str(journal),
            "worker",
            *processes,
            "--recovery-grace",
            "0",
        ],
        env=env(),
        cwd=FLOWS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        kill_group(proc)


def events_of(client: httpx.Client, run_id: str) -> int:
    response = client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    return int(response.json()["events"])


def wait_for(predicate: Any, what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
