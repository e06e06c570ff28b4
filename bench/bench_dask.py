"""Per-effect overhead through Dask, beside the thread pool, in the same run.

Run from the project root (needs ``pip install -e ".[dask]"``)::

    .venv/bin/python bench/bench_dask.py                  # n = 10_000, 3 tries
    .venv/bin/python bench/bench_dask.py --n 2000 --tries 1
    .venv/bin/python bench/bench_dask.py --mode separate  # own processes
    .venv/bin/python bench/bench_dask.py --scheduler tcp://host:8786

The workload is one ``ctx.parallel.map`` over ``n`` items, each a trivial sync
``@task`` (returns its argument): everything measured is overhead. Every try is a
fresh journal and a fresh ``Engine.run`` at the default fsync durability, timed
over the whole call; the executors are interleaved (threads, dask, threads,
dask, ...) so that a noisy host slows both alike. Reported per executor: the best
and median wall time per effect over the tries, effects/s, group commits, and
for Dask the number of Dask tasks the effects travelled in.

Cluster shapes (``--mode``):

* ``local``: a ``distributed.LocalCluster`` with worker processes; its scheduler
  runs inside this process (the laptop set-up), so it shares the orchestrator's
  interpreter and GIL;
* ``separate``: ``dask scheduler`` and ``dask worker`` started as their own
  processes, as on a real cluster;
* ``both`` (default): one after the other.

Workers import the task by reference (``bench_dask:trivial``), so this directory
is put on their ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from replay_engine import Engine, task
from replay_engine._run.dask_executor import DaskExecutor

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@task
def trivial(i: int) -> int:
    return i


async def fan_out(inputs: dict[str, Any], ctx: Any) -> int:
    outs = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(trivial, {"i": i})
    )
    return len(outs)


class CountingDaskExecutor(DaskExecutor):
    """Counts the Dask tasks sent (effects travel in chunks)."""

    tasks = 0

    def _send(self, *args: Any, **kwargs: Any) -> None:
        self.tasks += 1
        super()._send(*args, **kwargs)


def one_run(executor: Any, n: int) -> dict[str, float]:
    workdir = tempfile.mkdtemp(prefix="bench-dask-")
    try:
        with Engine(os.path.join(workdir, "j"), executor=executor) as engine:
            before = getattr(executor, "tasks", 0)
            start = time.perf_counter()
            run = engine.run(fan_out, {"n": n})
            wall = time.perf_counter() - start
            assert run.status == "completed" and run.result == n, run.error
            assert run.stats.dispatched == n
            return {
                "wall": wall,
                "commits": run.stats.commits,
                "dask_tasks": getattr(executor, "tasks", 0) - before,
            }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    parts = [str(HERE), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


@contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    import distributed

    os.environ.update(PYTHONPATH=worker_env()["PYTHONPATH"])
    with distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    ) as cluster:
        yield cluster.scheduler_address


@contextmanager
def separate_cluster(workers: int) -> Iterator[str]:
    tmp = tempfile.mkdtemp(prefix="bench-dask-cluster-")
    scheduler_file = os.path.join(tmp, "scheduler.json")
    env = worker_env()

    def start(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", *argv],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    procs = [
        start(
            "distributed.cli.dask_scheduler",
            "--scheduler-file",
            scheduler_file,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            ":0",
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(scheduler_file):
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written before it is complete
        with open(scheduler_file, encoding="utf-8") as f:
            address = json.load(f)["address"]
        procs.append(
            start(
                "distributed.cli.dask_worker",
                address,
                "--nworkers",
                str(workers),
                "--nthreads",
                "1",
            )
        )
        import distributed

        with distributed.Client(address, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(address: str, n: int, tries: int, label: str) -> dict[str, Any]:
    dask = CountingDaskExecutor(address)
    try:
        one_run(dask, min(n, 500))  # warm-up: workers import the task module
        one_run(None, min(n, 500))
        rows: dict[str, list[dict[str, float]]] = {"threads": [], "dask": []}
        for _ in range(tries):
            rows["threads"].append(one_run(None, n))
            rows["dask"].append(one_run(dask, n))
    finally:
        dask.shutdown()
    return {"label": label, "n": n, "rows": rows}


def report(result: dict[str, Any]) -> None:
    n = result["n"]
    print(f"\n{result['label']}: {n:,} trivial sync tasks in one parallel.map")
    print(
        "| executor | best µs/effect | median µs/effect | effects/s (best) |"
        " commits | Dask tasks |"
    )
    print("|---|---|---|---|---|---|")
    best: dict[str, float] = {}
    for name, rows in result["rows"].items():
        walls = [r["wall"] for r in rows]
        best[name] = min(walls) / n * 1e6
        tasks = ""
        if name == "dask":
            tasks = f"{statistics.median(r['dask_tasks'] for r in rows):.0f}"
        commits = statistics.median(r["commits"] for r in rows)
        median = statistics.median(walls) / n * 1e6
        print(
            f"| {name} | {best[name]:.0f} | {median:.0f} | {n / min(walls):,.0f} |"
            f" {commits:.0f} | {tasks} |"
        )
    print(f"dask ÷ threads (best): {best['dask'] / best['threads']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--mode", choices=["local", "separate", "both"], default="both")
    parser.add_argument("--scheduler", help="use this running cluster instead")
    args = parser.parse_args()
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f}"
    )
    shapes: list[tuple[str, Callable[[int], Any]]] = []
    if args.scheduler:
        shapes = [(f"cluster at {args.scheduler}", lambda _: _given(args.scheduler))]
    else:
        if args.mode in ("local", "both"):
            shapes.append(
                (
                    f"LocalCluster, {args.workers} worker processes x 1 thread",
                    local_cluster,
                )
            )
        if args.mode in ("separate", "both"):
            shapes.append(
                (
                    f"dask scheduler + {args.workers} dask workers (processes)",
                    separate_cluster,
                )
            )
    for label, make in shapes:
        with make(args.workers) as address:
            report(measure(address, args.n, args.tries, label))


@contextmanager
def _given(address: str) -> Iterator[str]:
    yield address


if __name__ == "__main__":
    main()
