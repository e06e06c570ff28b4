"""SIGKILL a process executing many runs at once through the shared commit pump.

A child interpreter starts ``RUNS`` runs of ``many_flows.steps`` at once in one
engine (``asyncio.gather`` of ``run_async``), so their creations, steps and
ends share commits (``_run/group_commit.py``: one write transaction, one fsync
for many runs). It SIGKILLs itself right after its ``k``-th shared commit
returns, with runs at every stage: not yet created, mid-way, ended.

Then every run is resumed here, all at once again (or started, if its creation
never committed), and:

* each ends exactly as an uninterrupted run: the expected result, and the same
  journal content as a reference run of the same inputs (``verify`` clean);
* no effect whose completion was committed before the kill ran again (the
  side file counts executions, outside the journal);
* the crashed journal of each run is a prefix of its final one.

The child proves the sharing happened: it reports how many runs each shared
commit carried, and some carried several (without the shared pump there is no
``append_group`` to wrap and the child never dies).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from replay_engine import Engine, Run
from tests.crash import many_flows
from tests.helpers import child_env
from tests.journal_views import content, settled_keys
from tests.side_file import read_side

RUNS = 24
PROCESS = "tests.crash.many_flows:steps"

CHILD = r"""
import asyncio, json, os, signal, sys
from replay_engine import Engine
from replay_engine._store.store import Store
from tests.crash import many_flows

journal, report = sys.argv[1], sys.argv[4]
kill_at, runs = int(sys.argv[2]), int(sys.argv[3])
original = Store.append_group
done = [0]

def append_group(self, items):
    results = original(self, items)
    done[0] += 1
    with open(report, "a") as fh:
        fh.write(json.dumps(len(items)) + "\n")
    if done[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # durable: the commit returned
    return results

Store.append_group = append_group

async def main(engine):
    await asyncio.gather(*(
        engine.run_async(many_flows.steps, {"run": f"r{i}", "seed": i}, run_id=f"r{i}")
        for i in range(runs)
    ))

with Engine(journal) as engine:
    asyncio.run(main(engine))
print("finished")
"""


def inputs_of(i: int) -> dict[str, object]:
    return {"run": f"r{i}", "seed": i}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[object]]:
    """Each run's journal content, executed alone and uninterrupted."""
    path = tmp_path_factory.mktemp("many-ref") / "journal"
    with Engine(str(path), durability="process") as engine:
        out = {}
        for i in range(RUNS):
            run = engine.run(many_flows.steps, inputs_of(i), run_id=f"r{i}")
            assert run.status == "completed"
            out[f"r{i}"] = content(engine, f"r{i}")
        return out


@pytest.mark.parametrize("kill_at", [1, 2, 4, 6, 9])
def test_sigkill_during_shared_commits(
    tmp_path: Path,
    kill_at: int,
    reference: dict[str, list[object]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = tmp_path / "journal"
    side = tmp_path / "side.jsonl"
    report = tmp_path / "groups.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(journal),
            str(kill_at),
            str(RUNS),
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(**{many_flows.SIDE_ENV: str(side)}),
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    groups = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(groups) == kill_at
    assert max(groups) > 1, f"no commit was shared: {groups}"

    ran_before = Counter((r["run"], r["i"]) for r in read_side(side))
    monkeypatch.setenv(many_flows.SIDE_ENV, str(side))  # the resumes' steps too
    with Engine(str(journal)) as engine:
        existing = {info.run_id for info in engine.runs()}
        crashed = {run_id: engine.events(run_id) for run_id in existing}

        async def finish_all() -> list[Run]:
            return await asyncio.gather(
                *(
                    engine.resume_async(f"r{i}", process=PROCESS)
                    if f"r{i}" in existing
                    else engine.run_async(
                        many_flows.steps, inputs_of(i), run_id=f"r{i}"
                    )
                    for i in range(RUNS)
                )
            )

        runs = asyncio.run(finish_all())
        for i, run in enumerate(runs):
            run_id = f"r{i}"
            assert run.status == "completed", (run_id, run.error)
            assert run.result == many_flows.expected(run_id, i)
            assert content(engine, run_id) == reference[run_id], run_id
            final = engine.events(run_id)
            before = crashed.get(run_id, [])
            assert [s.digest for s in final[: len(before)]] == [
                s.digest for s in before
            ], f"{run_id}: the crashed journal is not a prefix of the final one"
        assert engine.verify().ok

    ran = Counter((r["run"], r["i"]) for r in read_side(side))
    for i in range(RUNS):
        run_id = f"r{i}"
        # Steps are sequential: the first `completed` of them had a durable
        # completion at the kill; each ran exactly once, before it.
        completed = len(settled_keys(crashed.get(run_id, [])))
        for step in range(many_flows.STEPS):
            times = ran[(run_id, step)]
            assert times >= 1, (run_id, step)
            if step < completed:
                assert times == ran_before[(run_id, step)] == 1, (run_id, step, times)
