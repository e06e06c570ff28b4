"""``bench_cold.py``'s (c): many runs at once (its children and its table).

Its own module so that ``bench_cold.py`` stays under the size limit; run
through ``bench_cold.py`` (``--child many:…`` / ``single:…``, and the parent's
table), never on its own.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

from replay_engine import Engine, task


@task
async def noop_async(i: int) -> int:
    return i


async def fanout(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_async, {"i": i})
    )
    return len(out)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench_cold: check failed: {what}")


async def ten_steps(inputs: dict[str, int], ctx: Any) -> int:
    for i in range(10):
        await ctx.task(noop_async, {"i": i})
    return 10


def child_many(journal: str, runs: int, tag: str) -> dict[str, Any]:
    async def all_runs(engine: Engine) -> list[Any]:
        return await asyncio.gather(
            *(engine.run_async(ten_steps, {}, run_id=f"{tag}-{i}") for i in range(runs))
        )

    with Engine(journal) as engine:
        started = time.perf_counter()
        cpu = time.process_time()
        done = asyncio.run(all_runs(engine))
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        # Commits this engine made (one fsync each): the shared pump's effect.
        commits = engine._store.commits
    _check(all(r.status == "completed" for r in done), "many runs")
    return {
        "wall": wall,
        "cpu": cpu,
        "commits": commits,
        "effects": runs * 10,
        "started": started,
    }


async def thousand_steps(inputs: dict[str, int], ctx: Any) -> int:
    for i in range(inputs["n"]):
        await ctx.task(noop_async, {"i": i})
    return inputs["n"]


def fsync_floor(path: str, commits: int) -> float:
    """Seconds per raw py-lmdb write transaction (one small put) with fsync."""
    env = lmdb.open(path, map_size=1 << 26, sync=True)
    try:
        started = time.perf_counter()
        for i in range(commits):
            with env.begin(write=True) as txn:
                txn.put(i.to_bytes(8, "big"), b"x" * 200)
        return (time.perf_counter() - started) / commits
    finally:
        env.close()


def child_single(journal: str, runs: int) -> dict[str, Any]:
    floor_s = fsync_floor(journal + "-floor", 300)
    with Engine(journal) as engine:
        started = time.perf_counter()
        run = engine.run(thousand_steps, {"n": 1000}, run_id="steps-1000")
        steps = time.perf_counter() - started
        commits = run.stats.commits
        started = time.perf_counter()
        engine.run(ten_steps, {}, run_id="single-10")
        one = time.perf_counter() - started
        started = time.perf_counter()
        engine.run(fanout, {"n": runs * 10}, run_id="single-map")
        mapped = time.perf_counter() - started
    floor_s = min(floor_s, fsync_floor(journal + "-floor2", 300))
    return {
        "one_run_s": one,
        "map_s": mapped,
        "steps_s": steps,
        "steps_commits": commits,
        "fsync_floor_s": floor_s,
    }


def bench_many(base: Path, args: Any, child: Callable[..., Any], script: str) -> None:
    runs, procs = args.runs, args.procs
    journal = base / "many"
    single = child(f"single:{runs}", journal, args)
    one = child(f"many:{runs}:one", journal, args)
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                script,
                "--child",
                f"many:{runs // procs}:p{i}",
                "--journal",
                str(journal),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(procs)
    ]
    outs = [
        json.loads(c.communicate(timeout=600)[0].splitlines()[-1]) for c in children
    ]
    # From the first child's first run to the last one's end (not start-up).
    first = min(o["started"] for o in outs)
    end = max(o["started"] + o["wall"] for o in outs)
    spread = end - first
    _ = started
    shutil.rmtree(journal)
    eff = runs * 10
    print(f"\n## {runs:,} concurrent runs of 10 sequential async effects (fsync)")
    print("| shape | wall s | effects/s | CPU s | commits |")
    print("|---|---|---|---|---|")
    rows = [
        ("one run of 10 effects", single["one_run_s"], 10, "", ""),
        (f"one run, parallel.map of {eff:,}", single["map_s"], eff, "", ""),
        (
            f"{runs:,} runs, one engine, one loop",
            one["wall"],
            eff,
            f"{one['cpu']:.2f}",
            str(one["commits"]),
        ),
        (
            f"{runs:,} runs over {procs} processes",
            spread,
            eff,
            f"{sum(o['cpu'] for o in outs):.2f}",
            str(sum(o["commits"] for o in outs)),
        ),
    ]
    for label, wall, effects, cpu, commits in rows:
        print(f"| {label} | {wall:.3f} | {effects / wall:,.0f} | {cpu} | {commits} |")
    floor_s = single["fsync_floor_s"]
    print(
        f"\n1,000 sequential durable steps in one run: {1000 / single['steps_s']:,.0f}"
        f" steps/s ({single['steps_commits']} commits); floor: a raw py-lmdb"
        f" write transaction with fsync, {1 / floor_s:,.0f} commits/s"
        f" ({floor_s * 1e3:.2f} ms each); target >= 1,000 steps/s"
    )
