"""``timeline`` reads a run's events once: ``status`` reuses them (issue 16).

``Engine.status(run_id, events=...)`` takes the events the caller has just
read instead of reading the whole journal again (what is pending or abandoned,
a failed run's error). It must say exactly what ``status(run_id)`` says, for
every kind of run whose status is read from its events.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from replay_engine import Engine
from tests.timetravel import hist_flows, tt_flows

RUNS = ["done", "waiting", "cancelled", "failed", "fork"]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reads") / "journal"
    with Engine(str(path), durability="process") as engine:
        engine.run(tt_flows.process, {"items": [1, 2]}, run_id="done")
        engine.run(hist_flows.waits, {}, run_id="waiting")
        engine.run(hist_flows.waits, {}, run_id="cancelled")
        engine.cancel("cancelled", reason="enough")
        engine.run(hist_flows.failing, {}, run_id="failed")
        engine.fork("done", at=6, new_run_id="fork")
    return path


@pytest.mark.parametrize("run_id", RUNS)
def test_status_given_the_events_says_what_status_says(
    journal: Path, run_id: str
) -> None:
    with Engine(str(journal)) as engine:
        events = engine.events(run_id)
        assert engine.status(run_id, events=events) == engine.status(run_id)


def test_the_runs_have_what_status_reads_from_their_events(journal: Path) -> None:
    """The comparison above covers pending, abandoned and a failed run's error."""
    with Engine(str(journal)) as engine:
        assert engine.status("waiting").pending
        assert engine.status("cancelled").abandoned
        assert engine.status("failed").error is not None
