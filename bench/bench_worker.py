"""The worker: post-to-resume latency, recovery after a kill, runs/s from a queue.

Run from the project root::

    .venv/bin/python bench/bench_worker.py              # about a minute on 2 cores
    .venv/bin/python bench/bench_worker.py --quick      # fewer samples: a smoke test
    .venv/bin/python bench/bench_worker.py --durability process

Each figure is printed beside a floor measured in the same run, on the same
journal, and their ratio:

* **post → completed** (p50/p99 over ``--posts`` runs): a run waits on an
  ``@external`` effect; the bench posts its result and polls the journal
  (``Store.get_run``, every 0.5 ms) until the run is ``completed``, with a
  ``replay-engine worker`` subprocess doing the iterate. Floor: the same post
  followed by ``engine.iterate`` in this process (the work the worker does,
  without noticing the post): what the worker adds is noticing it.
* **recovery after a kill**: a ``replay-engine run`` child is SIGKILLed while
  its first of two 0.3 s steps is in flight; time from the kill until the run
  is ``completed``, a worker with ``--recovery-grace`` running. Floor: the same
  kill then ``engine.resume`` here at once. The difference is detection: the
  recovery grace (a run nobody holds must be quiet that long) plus polling.
* **runs/s from a queue**: ``--runs`` trivial runs (no effects) submitted to
  one queue, then one worker starts them; rate from the first start to the
  last completion. Floor: the same number of submitted runs resumed one after
  another in this process.

Timing figures move with the machine and its load; watch the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from replay_engine import Engine  # noqa: E402
from tests.worker import worker_flows as wf  # noqa: E402

FLOWS = "tests.worker.worker_flows"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _cli(journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _until(check: Callable[[], bool], timeout: float, every: float = 0.0005) -> float:
    """Poll ``check`` until true; the time it became true (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the bench waited too long: is the worker running?")
        time.sleep(every)
    return time.perf_counter()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_post(root: Path, n: int, durability: str) -> dict[str, Any]:
    journal = root / "post"
    with Engine(str(journal), durability=durability) as engine:  # type: ignore[arg-type]
        store = engine._store
        ids = [f"p{i}" for i in range(n)]
        floor_ids = [f"f{i}" for i in range(n)]
        for run_id in ids + floor_ids:
            assert engine.run(wf.asks, None, run_id=run_id).status == "waiting"
        # Floor first (no worker yet): post, then iterate here.
        floor: list[float] = []
        for run_id in floor_ids:
            began = time.perf_counter()
            engine.post(run_id, "0", result=1)
            engine.iterate(run_id)
            floor.append(time.perf_counter() - began)
        worker = _cli(journal, "worker", f"{FLOWS}:asks", "--durability", durability)
        try:
            time.sleep(1.0)  # the worker's start-up is not what is measured
            figure: list[float] = []
            for run_id in ids:
                began = time.perf_counter()
                engine.post(run_id, "0", result=1)
                done = _until(
                    lambda r=run_id: store.get_run(r).status == "completed",  # type: ignore[union-attr]
                    30,
                )
                figure.append(done - began)
                time.sleep(0.01)  # an idle moment between posts
        finally:
            _stop(worker)
    return {"figure": figure, "floor": floor}


def bench_recovery(
    root: Path, tries: int, grace: float, durability: str
) -> dict[str, Any]:
    figure: list[float] = []
    floor: list[float] = []
    for attempt in range(tries):
        for kind in ("floor", "figure"):
            journal = root / f"rec-{kind}-{attempt}"
            side = root / f"side-{kind}-{attempt}"
            inputs = json.dumps({"n": 2, "delay": 0.3, "side": str(side)})
            runner = _cli(
                journal,
                "run",
                f"{FLOWS}:steps",
                "--input",
                inputs,
                "--run-id",
                "r",
                "--durability",
                durability,
            )
            _until(lambda s=side: s.exists() and s.stat().st_size > 0, 30, 0.002)
            _stop(runner, signal.SIGKILL)
            killed = time.perf_counter()
            with Engine(str(journal), durability=durability) as engine:  # type: ignore[arg-type]
                if kind == "floor":
                    engine.resume("r")
                    floor.append(time.perf_counter() - killed)
                    continue
                worker = _cli(
                    journal,
                    "worker",
                    f"{FLOWS}:steps",
                    "--recovery-grace",
                    str(grace),
                    "--durability",
                    durability,
                )
                try:
                    done = _until(
                        lambda e=engine: e._store.get_run("r").status == "completed",  # type: ignore[union-attr]
                        60,
                        0.002,
                    )
                    figure.append(done - killed)
                finally:
                    _stop(worker)
    return {"figure": figure, "floor": floor}


def bench_queue(root: Path, runs: int, durability: str) -> dict[str, Any]:
    journal = root / "queue"
    with Engine(str(journal), durability=durability) as engine:  # type: ignore[arg-type]
        store = engine._store
        floor_ids = [f"f{i:05d}" for i in range(runs)]
        for run_id in floor_ids:
            engine.submit(wf.other, None, run_id=run_id, queue="floor")
        began = time.perf_counter()
        for run_id in floor_ids:
            engine.resume(run_id)
        floor = time.perf_counter() - began
        for i in range(runs):
            engine.submit(wf.other, None, run_id=f"q{i:05d}", queue="q")
        worker = _cli(journal, "worker", f"{FLOWS}:other", "--durability", durability)
        try:
            first = _until(
                lambda: (
                    any(
                        a.entry.status != "queued"
                        for a in store.active_runs(records=False)
                    )
                    or not store.active_runs(records=False)
                ),
                60,
                0.001,
            )
            last = _until(lambda: not store.active_runs(records=False), 300, 0.005)
        finally:
            _stop(worker)
    return {"figure": runs / (last - first), "floor": runs / floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--recovery-grace", type=float, default=0.5)
    parser.add_argument("--durability", choices=["fsync", "process"], default="fsync")
    parser.add_argument("--json", metavar="FILE", help="Also write the figures here.")
    args = parser.parse_args()
    if args.quick:
        args.posts, args.runs, args.tries = 30, 100, 1
    root = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    os.environ.setdefault("REPLAY_ENGINE_STATE_DIR", str(root / "state"))
    try:
        post = bench_post(root, args.posts, args.durability)
        rec = bench_recovery(root, args.tries, args.recovery_grace, args.durability)
        queue = bench_queue(root, args.runs, args.durability)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = 1000.0
    rows = []
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        fig, flo = _pct(post["figure"], q) * ms, _pct(post["floor"], q) * ms
        rows.append(
            (f"post -> completed, {name}", f"{fig:.1f} ms", f"{flo:.1f} ms", fig / flo)
        )
    fig, flo = statistics.median(rec["figure"]), statistics.median(rec["floor"])
    rows.append(
        (
            f"recovery after kill (grace {args.recovery_grace}s), median",
            f"{fig * ms:.0f} ms",
            f"{flo * ms:.0f} ms",
            fig / flo,
        )
    )
    rows.append(
        (
            "runs/s started from a queue",
            f"{queue['figure']:.0f}/s",
            f"{queue['floor']:.0f}/s",
            queue["floor"] / queue["figure"],
        )
    )
    print(f"durability={args.durability}  posts={args.posts}  runs={args.runs}")
    print(f"{'row':<46} {'figure':>10} {'floor':>10} {'ratio':>7}")
    for name, fig_s, flo_s, ratio in rows:
        print(f"{name:<46} {fig_s:>10} {flo_s:>10} {ratio:>6.2f}x")
    print("(ratio: figure / floor for times; floor / figure for runs/s)")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"post": post, "recovery": rec, "queue": queue}, indent=1)
        )


if __name__ == "__main__":
    main()
