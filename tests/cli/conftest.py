"""Fixtures for the CLI tests: a journal path and an in-process CLI runner.

The processes the tests run live in ``cli_flows.py`` next to this file and are
imported as the top-level module ``cli_flows`` (this directory goes on
``sys.path``), so a run records its process as ``cli_flows:<name>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from replay_engine._cli import ENV_JOURNAL
from tests import helpers

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
    return helpers.cli_invoker(journal)


@pytest.fixture
def invoke_json(invoke: Invoke) -> Callable[..., Any]:
    """``invoke_json(*args, code=N)``: the one JSON document the command printed."""

    def run(*args: str, code: int = 0) -> Any:
        result = invoke(*args, "--json", code=code)
        return json.loads(result.stdout)

    return run


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: this checkout and cli_flows importable."""
    return helpers.child_env(FLOWS_DIR, **extra)
