"""Fixtures for the CLI tests: a journal path and an in-process CLI runner.

The processes the tests run live in ``cli_flows.py`` next to this file and are
imported as the top-level module ``cli_flows`` (this directory goes on
``sys.path``), so a run records its process as ``cli_flows:<name>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from replay_engine import Engine
from replay_engine._cli import ENV_JOURNAL, cli

FLOWS_DIR = Path(__file__).resolve().parent
ROOT = FLOWS_DIR.parent.parent

Invoke = Callable[..., Result]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """The journal directory the CLI is pointed at (created by the first run)."""
    return tmp_path / "journal"


@pytest.fixture
def invoke(journal: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``invoke(*args, code=N)`` runs ``replay-engine --journal J *args`` in-process.

    Asserts the exit code when ``code`` is given.
    """
    monkeypatch.syspath_prepend(str(FLOWS_DIR))
    monkeypatch.delenv(ENV_JOURNAL, raising=False)
    runner = CliRunner()

    def run(*args: str, code: int | None = None, **kwargs: Any) -> Result:
        result = runner.invoke(
            cli, ["--journal", str(journal), *args], catch_exceptions=False, **kwargs
        )
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code}, expected {code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture
def invoke_json(invoke: Invoke) -> Callable[..., Any]:
    """``invoke_json(*args, code=N)``: the one JSON document the command printed."""

    def run(*args: str, code: int = 0) -> Any:
        result = invoke(*args, "--json", code=code)
        return json.loads(result.stdout)

    return run


@pytest.fixture
def open_engine(journal: Path) -> Iterator[Callable[[], Engine]]:
    """Open the test's journal with the Python API (closed at teardown)."""
    opened: list[Engine] = []

    def make() -> Engine:
        engine = Engine(str(journal))
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: this checkout and cli_flows importable."""
    env = {k: v for k, v in os.environ.items() if k != ENV_JOURNAL}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(FLOWS_DIR), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env
