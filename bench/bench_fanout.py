"""Issue 17: the fresh fan-out's cost per effect, A/B between trees.

Run from the project root::

    .venv/bin/python bench/bench_fanout.py --against /work/main   # CPU, 5 tries
    .venv/bin/python bench/bench_fanout.py --against /work/main --callgrind

The workload is ``bench_engine.py --fresh-only``'s: one ``ctx.parallel.map``
of ``n`` trivial tasks (``thread``: the default thread pool, ``inline``,
``async``) at the default fsync durability, in a fresh journal.

Each try is a fresh child interpreter per tree (``PYTHONPATH``: the tree's
``replay_engine`` and ``journal_format``), alternating which tree goes first
so both share the host's load; a child times one warm-up run and then one
timed run with ``time.process_time`` (every thread of the process: the commit
thread and the pool count too) and ``perf_counter``. Reported: the median
over tries of CPU µs per effect and of effects/s, per tree.

``--callgrind`` counts instructions instead (valgrind, every thread): a child
at ``n/2`` and one at ``n`` effects, the difference divided by ``n/2``, so
start-up and imports cancel out. It does not depend on the host's load, so it
is the steady A/B on a busy machine (about half a minute per child at 20k).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from replay_engine import Engine, task


@task(executor="inline")
def noop_inline(i: int) -> int:
    return i


@task
def noop_thread(i: int) -> int:
    return i


@task
async def noop_async(i: int) -> int:
    return i


TASKS = {"thread": noop_thread, "inline": noop_inline, "async": noop_async}


def _process(kind: str) -> Any:
    noop = TASKS[kind]

    async def fan_out(inputs: dict[str, int], ctx: Any) -> int:
        out = await ctx.parallel.map(
            range(inputs["n"]), lambda i: ctx.task(noop, {"i": i})
        )
        return len(out)

    return fan_out


def child(kind: str, n: int, warm: bool) -> None:
    process = _process(kind)
    with tempfile.TemporaryDirectory() as tmp, Engine(str(Path(tmp) / "j")) as engine:
        if warm:
            engine.run(process, {"n": min(n, 2000)}, run_id="warm")
        wall, cpu = time.perf_counter(), time.process_time()
        run = engine.run(process, {"n": n}, run_id="timed")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if run.status != "completed" or run.result != n:
            raise SystemExit(f"bench_fanout: {kind}: {run.status} {run.stats}")
    print(json.dumps({"cpu": cpu, "wall": wall}))


def _child_cmd(kind: str, n: int, warm: bool) -> list[str]:
    return [sys.executable, __file__, "--child", kind, str(n), str(int(warm))]


def _env(tree: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}


def timed(args: argparse.Namespace, trees: dict[str, str]) -> None:
    for kind in args.kinds.split(","):
        cpus: dict[str, list[float]] = {t: [] for t in trees}
        rates: dict[str, list[float]] = {t: [] for t in trees}
        for i in range(args.tries):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for tree in order:
                out = subprocess.run(
                    _child_cmd(kind, args.n, True),
                    capture_output=True,
                    text=True,
                    env=_env(trees[tree]),
                    check=True,
                )
                got = json.loads(out.stdout.splitlines()[-1])
                cpus[tree].append(got["cpu"] / args.n * 1e6)
                rates[tree].append(args.n / got["wall"])
        for tree in trees:
            print(
                f"{kind:6s} n={args.n} {tree:8s} CPU µs/effect median"
                f" {statistics.median(cpus[tree]):.2f} (min {min(cpus[tree]):.2f});"
                f" effects/s median {statistics.median(rates[tree]):,.0f}"
                f" (max {max(rates[tree]):,.0f})"
            )


def _instructions(tree: str, kind: str, n: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    out = subprocess.run(
        [*cmd, *_child_cmd(kind, n, False)],
        capture_output=True,
        text=True,
        env=_env(tree),
        check=True,
    )
    line = next(x for x in out.stderr.splitlines() if "Collected :" in x)
    return int(line.rsplit(":", 1)[1])


def callgrind(args: argparse.Namespace, trees: dict[str, str]) -> None:
    half = args.n // 2
    for kind in args.kinds.split(","):
        for tree, path in trees.items():
            low = _instructions(path, kind, half)
            high = _instructions(path, kind, args.n)
            print(
                f"{kind:6s} {tree:8s} instructions per effect:"
                f" {(high - low) / (args.n - half):,.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--kinds", default="thread,inline,async")
    parser.add_argument("--against", help="another tree (its replay_engine's parent)")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2] == "1")
        return
    trees = {"this": str(Path(__file__).resolve().parent.parent)}
    if args.against:
        trees["against"] = str(Path(args.against).resolve())
    if args.callgrind:
        callgrind(args, trees)
    else:
        timed(args, trees)


if __name__ == "__main__":
    main()
