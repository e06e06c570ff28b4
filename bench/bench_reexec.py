"""Issue 17: the CPU of re-executing replayed calls, per call, A/B between trees.

Run from the project root::

    .venv/bin/python bench/bench_reexec.py                     # seq and par, n = 50,000
    git archive main replay_engine journal_format | tar -x -C /tmp/main-tree
    .venv/bin/python bench/bench_reexec.py --against /tmp/main-tree --tries 5

A run of ``n`` completed inline effects (``n`` sequential ``ctx.task`` calls, or
one ``ctx.parallel.map`` of ``n``) that then waits on an ``@external`` gate is
recorded once per case. Each try is a fresh child interpreter that resumes it
twice (the first warms the imports and the journal's pages) and times, with
``time.process_time`` inside the process function, only the loop (or the
``parallel.map``) whose every call is answered from the journal: no fold, no
commit, no dispatch. That is the re-execution phase of ``bench_cold.py``'s
cold first resume. With ``--against DIR`` each try also runs DIR's code
(``PYTHONPATH``), alternating which goes first, so both rows share the load;
the figure is the median over tries of the better of the child's two resumes.
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

from replay_engine import Engine, external, task

CPU: list[float] = []


@task(executor="inline")
def noop_inline(i: int) -> int:
    return i


@external
def gate() -> None:
    """Never posted: the run stops ``waiting`` after its replayed calls."""


async def seq(inputs: dict[str, int], ctx: Any) -> Any:
    started = time.process_time()
    for i in range(inputs["n"]):
        await ctx.task(noop_inline, {"i": i})
    CPU.append(time.process_time() - started)
    return await ctx.task(gate, {})


async def par(inputs: dict[str, int], ctx: Any) -> Any:
    started = time.process_time()
    await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_inline, {"i": i})
    )
    CPU.append(time.process_time() - started)
    return await ctx.task(gate, {})


PROCESSES = {"seq": seq, "par": par}


def child(journal: str, name: str, n: int) -> None:
    with Engine(journal) as engine:
        for _ in range(2):
            run = engine.resume(name, process=PROCESSES[name])
            if run.status != "waiting" or run.stats.replayed != n:
                raise SystemExit(f"bench_reexec: {name}: {run.status} {run.stats}")
    print(json.dumps({"cpu": min(CPU)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--cases", default="seq,par")
    parser.add_argument("--against", help="another tree's replay_engine's parent dir")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions instead (valgrind): children at n/2 and n, the"
        " difference per call; load-independent, about a minute per tree and case",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return
    trees = {"this": str(Path(__file__).resolve().parent.parent)}
    if args.against:
        trees["against"] = str(Path(args.against).resolve())
    if args.callgrind:
        callgrind(args, trees)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            journal = str(Path(tmp) / f"{name}.lmdb")
            with Engine(journal, durability="process") as engine:
                engine.run(PROCESSES[name], {"n": args.n}, run_id=name)
            got: dict[str, list[float]] = {t: [] for t in trees}
            for i in range(args.tries):
                order = list(trees) if i % 2 == 0 else list(reversed(trees))
                for tree in order:
                    env = {**os.environ, "PYTHONPATH": trees[tree]}
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            journal,
                            name,
                            str(args.n),
                        ],
                        capture_output=True,
                        text=True,
                        env=env,
                        check=True,
                    )
                    got[tree].append(json.loads(out.stdout.splitlines()[-1])["cpu"])
            for tree, cpus in got.items():
                per = [c / args.n * 1e6 for c in cpus]
                print(
                    f"{name} n={args.n} {tree:8s} re-exec CPU µs/call: median"
                    f" {statistics.median(per):.3f} (min {min(per):.3f}, max"
                    f" {max(per):.3f})"
                )


def _instructions(tree: str, journal: str, name: str, n: int) -> int:
    env = {**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"}
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    out = subprocess.run(
        [*cmd, sys.executable, __file__, "--child", journal, name, str(n)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    line = next(x for x in out.stderr.splitlines() if "Collected :" in x)
    return int(line.rsplit(":", 1)[1])


def callgrind(args: argparse.Namespace, trees: dict[str, str]) -> None:
    """Instructions per replayed call: (count at n - count at n/2) / (n/2) / 2.

    Each child resumes twice; what does not grow with n (start-up, imports,
    the first resume's lazy imports) cancels out. The warm load of the
    checkpoint grows with n and is included (it is the same code in both
    trees).
    """
    half = args.n // 2
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            journals = {}
            for n in (half, args.n):
                journals[n] = str(Path(tmp) / f"{name}-{n}.lmdb")
                with Engine(journals[n], durability="process") as engine:
                    engine.run(PROCESSES[name], {"n": n}, run_id=name)
            for tree, path in trees.items():
                low = _instructions(path, journals[half], name, half)
                high = _instructions(path, journals[args.n], name, args.n)
                print(
                    f"{name} {tree:8s} instructions per replayed call (2 resumes):"
                    f" {(high - low) / (args.n - half) / 2:,.0f}"
                )


if __name__ == "__main__":
    main()
