"""Worker and run subprocesses for the worker tests and bench.

Each child is ``python -m replay_engine._cli`` in its own session (so a test
can SIGKILL exactly it and its pool processes), with the repository on its
``PYTHONPATH`` and the test's state directory. Output lines are collected by a
reader thread; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.helpers import child_env

FLOWS = "tests.worker.worker_flows"


class Child:
    """A ``replay-engine`` subprocess whose stdout lines are collected."""

    def __init__(self, journal: Path, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replay_engine._cli",
                "--journal",
                str(journal),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=child_env(),
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err)),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_line(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.proc.poll() is not None and not any(map(predicate, self.lines)):
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no such line from {self.args} within {timeout}s:\n"
            + "\n".join(self.lines + self.err)
        )

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def close(self) -> None:
        """SIGKILL if still alive; then close the pipes (after the readers end)."""
        if self.proc.poll() is None:
            self.kill()
        for thread in self._threads:
            thread.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_worker(
    journal: Path, processes: Sequence[str], *extra: str, durability: str = "process"
) -> Child:
    """``replay-engine worker`` on ``journal`` for ``FLOWS:<name>`` processes."""
    refs = [p if ":" in p else f"{FLOWS}:{p}" for p in processes]
    return Child(journal, "worker", *refs, "--durability", durability, *extra)


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Children registered here are SIGKILLed at the end, whatever happened."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.close()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
