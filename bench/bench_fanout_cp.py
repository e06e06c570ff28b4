"""What running checkpoints cost a fresh fan-out, A/B against another tree.

Run from the project root::

    git archive main replay_engine journal_format | tar -x -C /tmp/s19c-base
    .venv/bin/python bench/bench_fanout_cp.py --against /tmp/s19c-base --n 20000
    .venv/bin/python bench/bench_fanout_cp.py --against /tmp/s19c-base --callgrind

Each figure comes from a fresh child interpreter (``PYTHONPATH`` = the tree)
doing one fresh ``ctx.parallel.map`` of ``--n`` inline no-op tasks in a new
journal. CPU mode: the children of the two trees alternate, ``--repeat`` each;
the median CPU seconds of the run (``time.process_time``) per effect, and the
ratio of this tree to the other. Wall figures on a loaded host move too much
to tell 3 % apart; CPU and instructions do not.

``--callgrind``: instructions per effect under ``valgrind --tool=callgrind``,
``(I(n) - I(--base-n)) / (n - base-n)``, so start-up and imports cancel. A
running checkpoint is written when the uncovered events reach the covered
ones, so the cost per effect is a saw-tooth in ``n``: highest just after a
checkpoint (``n = 16384``: 32,770 events, one covering 32,768 just written, about 1.9
events encoded per event), lowest just before one. Give several ``--ns``
to see both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child(journal: str, n: int, durability: str) -> None:
    from replay_engine import Engine, task

    @task(executor="inline")
    def noop(i: int) -> int:
        return i

    async def fanout(inputs: dict[str, int], ctx: Any) -> int:
        out = await ctx.parallel.map(
            range(inputs["n"]), lambda i: ctx.task(noop, {"i": i})
        )
        return len(out)

    with Engine(journal, durability=durability) as engine:  # type: ignore[arg-type]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        run = engine.run(fanout, {"n": n}, run_id="fan")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
        if run.status != "completed" or run.result != n:
            raise SystemExit(f"bench_fanout_cp: run {run.status} {run.result}")
    sys_s = after.ru_stime - usage.ru_stime
    peak = after.ru_maxrss / 1024
    print(json.dumps({"cpu": cpu, "wall": wall, "sys": sys_s, "rss": peak}))


def _run(tree: str, n: int, durability: str, valgrind: bool) -> tuple[Any, str]:
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, __file__, "--child", str(Path(tmp) / "j")]
        cmd += ["--n", str(n), "--durability", durability]
        if valgrind:
            cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
            cmd += [sys.executable, __file__, "--child", str(Path(tmp) / "j")]
            cmd += ["--n", str(n), "--durability", durability]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.splitlines()[-1]), out.stderr


def _instructions(tree: str, n: int, durability: str) -> int:
    _, err = _run(tree, n, durability, valgrind=True)
    line = next(x for x in err.splitlines() if "Collected :" in x)
    return int(line.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", metavar="JOURNAL")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--ns", default="", help="several n (callgrind)")
    parser.add_argument("--base-n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--durability", default="fsync")
    parser.add_argument("--against", metavar="DIR", help="the other tree")
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.durability)
        return
    trees = {"this": str(ROOT)}
    if args.against:
        trees["other"] = args.against
    ns = [int(x) for x in args.ns.split(",")] if args.ns else [args.n]
    if args.callgrind:
        for tree, path in trees.items():
            low = _instructions(path, args.base_n, args.durability)
            for n in ns:
                high = _instructions(path, n, args.durability)
                per = (high - low) / (n - args.base_n)
                print(f"n={n} {tree:5s} instructions per effect: {per:,.0f}")
        return
    for n in ns:
        cpus: dict[str, list[float]] = {tree: [] for tree in trees}
        walls: dict[str, list[float]] = {tree: [] for tree in trees}
        syss: dict[str, list[float]] = {tree: [] for tree in trees}
        rss: dict[str, list[float]] = {tree: [] for tree in trees}
        for attempt in range(args.repeat):
            order = list(trees.items())
            if attempt % 2:
                order.reverse()
            for tree, path in order:
                got, _ = _run(path, n, args.durability, valgrind=False)
                cpus[tree].append(got["cpu"])
                walls[tree].append(got["wall"])
                syss[tree].append(got["sys"])
                rss[tree].append(got["rss"])
        for tree in trees:
            cpu = statistics.median(cpus[tree])
            wall = statistics.median(walls[tree])
            print(
                f"n={n} {tree:5s} CPU µs/effect {cpu / n * 1e6:.2f}"
                f" (min {min(cpus[tree]) / n * 1e6:.2f}; of it system"
                f" {statistics.median(syss[tree]) / n * 1e6:.2f}), wall effects/s"
                f" {n / wall:,.0f}, peak RSS {max(rss[tree]):.0f} MB"
            )
        if "other" in trees:
            ratio = statistics.median(cpus["this"]) / statistics.median(cpus["other"])
            print(f"n={n} CPU this/other: {ratio:.3f}")


if __name__ == "__main__":
    main()
