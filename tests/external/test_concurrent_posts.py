"""Posters in separate processes: racing posters and a 48-process fan-in.

Every worker is its own OS process with its own :class:`Engine` (its own LMDB
environment handle); all are released at once by a barrier. A worker that
fails for any reason other than a clean ``PostRejected`` (a lock timeout, an
LMDB error, a torn write) fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from replay_engine import Engine
from tests.helpers import child_env
from tests.journal_views import outcomes_per_key

from . import ext_flows as f
from .workers import run_together


def test_two_agents_racing_on_each_key_exactly_one_wins(
    engine: Engine, journal: Path
) -> None:
    n = 8
    engine.run(f.fan, {"n": n}, run_id="race")
    # Two agents per key, each with its own value: 16 processes at once.
    jobs = [[(f"0.{i}.0", 1000 * agent + i)] for i in range(n) for agent in (1, 2)]
    results, _, _ = run_together(str(journal), "race", jobs)
    winners: dict[str, int] = {}
    for job, [res] in zip(jobs, results, strict=True):
        key, value = job[0]
        if res["won"]:
            assert key not in winners, f"two winners for {key}"
            winners[key] = value
        else:
            assert res["reason"] == "already_completed", res
    assert sorted(winners) == [f"0.{i}.0" for i in range(n)]
    assert set(outcomes_per_key(engine, "race").values()) == {1}
    run = engine.iterate("race")
    assert run.status == "completed"
    assert run.result["outs"] == [winners[f"0.{i}.0"] for i in range(n)]
    assert engine.verify("race").ok


def test_many_racers_on_one_key(engine: Engine, journal: Path) -> None:
    engine.run(f.one_external, None, run_id="one")
    jobs = [[("1", i)] for i in range(12)]
    results, _, _ = run_together(str(journal), "one", jobs)
    won = [i for i, [res] in enumerate(results) if res["won"]]
    assert len(won) == 1
    assert Counter(res["reason"] for [res] in results if not res["won"]) == {
        "already_completed": 11
    }
    assert engine.iterate("one").result == {"prep": "x", "out": won[0]}


def test_48_concurrent_posting_processes_all_succeed(
    engine: Engine, journal: Path
) -> None:
    n = 48
    run = engine.run(f.fan, {"n": n}, run_id="fanin")
    assert run.status == "waiting" and len(run.pending) == n
    assert len(engine.pending("fanin")) == n
    jobs = [[(f"0.{i}.0", i * i)] for i in range(n)]
    results, _, pids = run_together(str(journal), "fanin", jobs)
    assert len(pids) == n
    failures = [res for [res] in results if not res["won"]]
    assert failures == [], failures
    seqs = sorted(res["seq"] for [res] in results)
    assert len(set(seqs)) == n  # every post its own event, none colliding
    assert engine.pending("fanin") == []
    assert outcomes_per_key(engine, "fanin") == Counter(
        {f"0.{i}.0": 1 for i in range(n)}
    )
    assert engine.verify("fanin").ok
    run = engine.iterate("fanin")
    assert run.status == "completed"
    assert run.result == {
        "sum": sum(i * i for i in range(n)),
        "outs": [i * i for i in range(n)],
    }


def test_posters_and_iterators_interleaved(engine: Engine, journal: Path) -> None:
    """Posts landing while other processes iterate the run are never lost."""
    n = 40
    engine.run(f.fan, {"n": n}, run_id="mix")
    jobs = [[(f"0.{i}.0", i)] for i in range(n)]
    results, iterated, _ = run_together(str(journal), "mix", jobs, iterators=1)
    assert all(res["won"] for [res] in results), results
    assert all(s in ("waiting", "completed") for s in iterated[0]), iterated
    run = engine.iterate("mix")
    assert run.status == "completed", run
    assert run.result["outs"] == list(range(n))
    assert engine.verify("mix").ok
    assert set(outcomes_per_key(engine, "mix").values()) == {1}


@pytest.mark.slow
def test_48_concurrent_cli_post_processes(engine: Engine, journal: Path) -> None:
    """The same fan-in through 48 ``replay-engine post`` processes started at once."""
    n = 48
    engine.run(f.fan, {"n": n}, run_id="clifan")
    cli = [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal)]
    procs = [
        subprocess.Popen(
            [*cli, "post", "clifan", f"0.{i}.0", "--result", str(i), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for i in range(n)
    ]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"post {i}: exit {proc.returncode}\n{err}"
        assert json.loads(out)["posted"] == "result"
    assert outcomes_per_key(engine, "clifan") == Counter(
        {f"0.{i}.0": 1 for i in range(n)}
    )
    run = engine.iterate("clifan")
    assert run.status == "completed" and run.result["outs"] == list(range(n))
