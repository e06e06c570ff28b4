"""Fixtures for the external-effect tests.

* ``journal``: the journal directory of the test (created by the first run);
* ``engine``: an :class:`Engine` on it (closed at teardown);
* ``side``: the side-channel file in-process tasks report executions to;
* ``cli``: ``cli(*args, code=N)`` runs ``replay-engine --journal J *args`` in
  a real subprocess and returns it (stdout, stderr, returncode);
* ``cli_json``: the same, parsing the one JSON document on stdout;
* ``invoke`` / ``invoke_json``: the same two, in-process (click's CliRunner).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from replay_engine import Engine
from tests import helpers
from tests.helpers import child_env

from .ext_flows import SIDE_ENV


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def engine(journal: Path) -> Iterator[Engine]:
    eng = Engine(str(journal))
    yield eng
    eng.close()


@pytest.fixture
def side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "side.jsonl"
    monkeypatch.setenv(SIDE_ENV, str(path))
    return path


Cli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def cli(journal: Path, side: Path) -> Cli:
    def run(
        *args: str, code: int | None = None, stdin: str | None = None
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
            input=stdin,
            env=child_env(**{SIDE_ENV: str(side)}),
            timeout=120,
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
def invoke(journal: Path, side: Path) -> Callable[..., Result]:
    """``invoke(*args, code=N)``: the CLI in-process (click's CliRunner)."""
    return helpers.cli_invoker(journal)


@pytest.fixture
def invoke_json(invoke: Callable[..., Result]) -> Callable[..., Any]:
    """The one JSON document an in-process CLI command printed."""

    def run(*args: str, code: int = 0, stdin: str | None = None) -> Any:
        return json.loads(invoke(*args, "--json", code=code, stdin=stdin).stdout)

    return run


@pytest.fixture
def cli_json(cli: Cli) -> Callable[..., Any]:
    def run(*args: str, code: int = 0, stdin: str | None = None) -> Any:
        proc = cli(*args, "--json", code=code, stdin=stdin)
        return json.loads(proc.stdout)

    return run
