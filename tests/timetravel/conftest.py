"""Fixtures for the time-travel tests: a recorded run, an engine, a CLI runner.

The processes live in ``tt_flows.py`` next to this file and are imported as
the top-level module ``tt_flows`` (this directory goes on ``sys.path``), so a
run records its process as ``tt_flows:process`` and the CLI, in-process or in
a subprocess started here, can import it again.

``expected_*`` compute what a snapshot must show from ``Engine.events`` alone,
independently of ``Engine.replay``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

import journal_format as jf
from replay_engine import Engine
from replay_engine._cli import ENV_JOURNAL
from tests import helpers

FLOWS_DIR = Path(__file__).resolve().parent
ROOT = FLOWS_DIR.parent.parent

Invoke = Callable[..., Result]


@dataclass
class Recorded:
    """A completed run of ``tt_flows:process`` and where its tasks leave marks."""

    engine: Engine
    journal: Path
    run_id: str
    side: Path
    result: Any

    def events(self, run_id: str | None = None) -> list[Any]:
        return self.engine.events(run_id or self.run_id)

    def side_lines(self) -> list[str]:
        return self.side.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def flows_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``tt_flows`` importable (and the recorded process reference resolvable)."""
    monkeypatch.syspath_prepend(str(FLOWS_DIR))
    monkeypatch.delenv(ENV_JOURNAL, raising=False)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def engine(journal: Path, flows_on_path: None) -> Iterator[Engine]:
    eng = Engine(str(journal))
    yield eng
    eng.close()


@pytest.fixture
def recorded(engine: Engine, journal: Path, tmp_path: Path) -> Recorded:
    """Run ``tt_flows:process`` to completion as ``r1``."""
    side = tmp_path / "side.txt"
    run = engine.run("tt_flows:process", {"side": str(side)}, run_id="r1")
    assert run.status == "completed", run.error
    return Recorded(engine, journal, "r1", side, run.result)


@pytest.fixture
def invoke(journal: Path, flows_on_path: None) -> Invoke:
    """``invoke(*args, code=N)`` runs ``replay-engine --journal J *args`` in-process."""
    return helpers.cli_invoker(journal)


@pytest.fixture
def invoke_json(invoke: Invoke) -> Callable[..., Any]:
    """``invoke_json(*args, code=N)``: the one JSON document the command printed."""

    def run(*args: str, code: int = 0, **kwargs: Any) -> Any:
        return json.loads(invoke(*args, "--json", code=code, **kwargs).stdout)

    return run


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a CLI subprocess: this checkout and ``tt_flows`` importable."""
    return helpers.child_env(FLOWS_DIR, **extra)


# -- the expected state, from the events alone -----------------------------------


def key_of(stored: Any) -> str | None:
    key = getattr(stored.event, "key", None)
    return None if key is None else jf.key_bytes_to_text(key)


def _keys(events: list[Any], until: int, kind: type) -> set[str]:
    return {str(key_of(s)) for s in events[:until] if isinstance(s.event, kind)}


def expected_done(events: list[Any], until: int) -> set[str]:
    """Keys of the effects whose completion has seq < ``until``."""
    return _keys(events, until, jf.EffectCompleted)


def expected_failed(events: list[Any], until: int) -> set[str]:
    """Keys of the effects whose failure has seq < ``until``."""
    return _keys(events, until, jf.EffectFailed)


def expected_in_flight(events: list[Any], until: int) -> set[str]:
    """Keys requested before ``until`` with no outcome before it."""
    requested = _keys(events, until, jf.EffectRequested)
    return requested - expected_done(events, until) - expected_failed(events, until)


def call_keys(events: list[Any]) -> list[str]:
    """Every call's key in tree order: requested, value and timer_started events."""
    kinds = (jf.EffectRequested, jf.ValueRecorded, jf.TimerStarted)
    keys = {key_of(s) for s in events if isinstance(s.event, kinds)}
    return sorted((k for k in keys if k is not None), key=jf.parse_key)
