"""Queues across workers: FIFO, a concurrency limit held by every worker, rates.

The limit is observed from the side: each task appends start and end stamps
with its run id to a file, and the maximum overlap is computed from them.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from replay_engine import Engine
from tests.worker import worker_flows as wf
from tests.worker.procs import Child, start_worker, wait_for


def max_overlap(side: Path) -> int:
    stamps = sorted(
        (int(w[2]), 1 if w[0] == "start" else -1)
        for w in wf.read_lines(side)
        if w[0] in ("start", "end")
    )
    # Ends sort before starts at the same instant: touching is not overlapping.
    stamps.sort(key=lambda s: (s[0], s[1]))
    level = peak = 0
    for _, change in stamps:
        level += change
        peak = max(peak, level)
    return peak


def _run_queue(tmp_path: Path, procs: list[Child], runs: int, delay: float) -> Path:
    journal, side = tmp_path / "j", tmp_path / "side"
    ids = [f"q{i:03d}" for i in range(runs)]
    with Engine(str(journal), durability="process") as engine:
        for run_id in ids:
            engine.submit(
                wf.queued_job,
                {"side": str(side), "delay": delay},
                run_id=run_id,
                queue="limited",
            )
        for _ in range(2):
            procs.append(
                start_worker(
                    journal, ["queued_job"], "--queue", "limited", "--concurrency", "3"
                )
            )

        def finished() -> bool:
            return not engine._store.active_runs(records=False)

        wait_for(finished, 30 + runs * delay * 2, f"{runs} runs to finish")
        statuses = Counter(engine.status(r).status for r in ids)
        assert statuses == {"completed": runs}
        assert [engine.result(r) for r in ids] == ids
    starts = Counter(w[1] for w in wf.read_lines(side) if w[0] == "start")
    assert starts == {r: 1 for r in ids}  # every run's effect ran exactly once
    peak = max_overlap(side)
    assert peak <= 3, f"the limit of 3 was exceeded: {peak} runs of the queue at once"
    # Both workers took part (the limit held across them, not per worker).
    started_by = [sum(line.startswith("started") for line in p.lines) for p in procs]
    assert all(started_by), started_by
    return side


def test_two_workers_200_runs_hold_a_queue_limit_of_3(
    tmp_path: Path, procs: list[Child]
) -> None:
    # About 5 s on 2 cores (200 runs of 50 ms, 3 at a time).
    side = _run_queue(tmp_path, procs, runs=200, delay=0.05)
    assert max_overlap(side) == 3  # enough work to fill the limit


def test_a_queue_is_started_oldest_first(tmp_path: Path, procs: list[Child]) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    # Submitted in the reverse of run id order: the index is keyed by run id,
    # so only ordering by creation time starts them in submission order.
    ids = [f"f{9 - i}" for i in range(8)]
    with Engine(str(journal), durability="process") as engine:
        for run_id in ids:
            engine.submit(
                wf.queued_job,
                {"side": str(side), "delay": 0.02},
                run_id=run_id,
                queue="one",
            )
        worker = start_worker(
            journal, ["queued_job"], "--queue", "one", "--concurrency", "1"
        )
        procs.append(worker)
        wait_for(lambda: not engine._store.active_runs(records=False), 60, "the queue")
    order = [w[1] for w in wf.read_lines(side) if w[0] == "start"]
    assert order == ids


def test_a_rate_limit_spaces_the_starts(tmp_path: Path, procs: list[Child]) -> None:
    journal, side = tmp_path / "j", tmp_path / "side"
    with Engine(str(journal), durability="process") as engine:
        for i in range(5):
            engine.submit(
                wf.queued_job,
                {"side": str(side), "delay": 0.0},
                run_id=f"r{i}",
                queue="slow",
            )
        began = time.monotonic()
        worker = start_worker(
            journal, ["queued_job"], "--queue", "slow", "--rate", "4/s"
        )
        procs.append(worker)
        wait_for(lambda: not engine._store.active_runs(records=False), 60, "the queue")
    starts = sorted(int(w[2]) for w in wf.read_lines(side) if w[0] == "start")
    assert len(starts) == 5
    # At most 4 starts in any one-second window: the 5th is >= 1 s after the 1st.
    assert (starts[4] - starts[0]) / 1e9 >= 0.9
    assert time.monotonic() - began < 30
