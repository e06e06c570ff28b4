"""Engine benchmarks: replay throughput against its floor, fresh-run throughput, memory.

Run from the project root::

    .venv/bin/python bench/bench_engine.py            # n = 100_000 (about a minute)
    .venv/bin/python bench/bench_engine.py --n 10000  # quick
    .venv/bin/python bench/bench_engine.py --profile replay-seq

Every measurement runs in a fresh child interpreter (this file re-invoked with
``--child``), so no case warms or pollutes another's heap, and the memory figures
are that child's own.

(a) Replay. Setup records two runs in one journal with the real engine, at
``durability="process"`` (no fsync; only the setup uses it) and with
``@task(executor="inline")`` tasks, to keep setup short:

* ``seq``: ``n`` sequential ``await ctx.task(noop, ...)``;
* ``par``: one ``ctx.parallel.map`` over ``n`` items, each ``ctx.task(noop, ...)``.

Each then calls an ``@external`` task, which nobody posts, so the run ends
``waiting`` with all ``n`` effects completed (a completed run is terminal and
would not re-execute). Every timed ``engine.resume(run_id)`` (default fsync
durability) re-executes the whole process, answers the ``n`` effects from the
journal and stops at the gate again; the bench checks ``stats.replayed == n``.
The timed span is the whole ``resume`` call: reading and checking the journal,
indexing it, re-executing, recording ``run_waiting``.

Each setup run ends ``waiting`` and so is checkpointed (docs/journal-format.md,
section 12): a resume reads the checkpoint, then folds only the events after it
(none here). The ``cold`` cases time the same resumes with the checkpoint taken
out first (raw py-lmdb; put back afterwards), so every event is read, checked
and folded: what the first resume of a run that never stopped ``waiting``
(say, one killed mid-run) costs.

The floor is measured in the same child, before the engine opens the journal
and again after the resumes (the better of the two is used, so that a burst of
the host's noise cannot flatter the ratio): the journal's LMDB environment
opened read-only with py-lmdb, a cursor over the run's range of the ``events``
database, and a msgspec decode of every envelope (the value after its 32-byte
digest) into ``journal_format.Envelope``.
No digest check, no chain check, no blob reads. Each effect is two events
(``requested`` + ``completed``), so the floor per effect is two events' worth.

(b) Fresh runs: ``n`` trivial tasks in one ``ctx.parallel.map`` at the default
fsync durability, for a sync task on the default executor (thread pool), an
inline sync task, and an async task; ``--repeat`` runs of each (new run ids in
one journal), reported as the best with every run's figure beside it, since
the host's noise only ever slows a run down. Reported: effects/s over the whole
``engine.run`` call, and ``run.stats.commits``.

(c) Memory of one ``n``-effect resume, each in its own child: peak RSS
(``ru_maxrss``) before and after the resume, and separately the ``tracemalloc``
peak of the Python heap during it. RSS counts the LMDB map pages the resume
touched (the journal is memory-mapped); tracemalloc counts only Python objects.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _child
import lmdb
from _floor import measure_floor

import journal_format as jf
from replay_engine import Engine, external, task

REPLAY_TARGET_RATIO = 5.0
FRESH_TARGET_PER_S = 50_000.0
"""Issue 17: every kind of task, the median of the runs (``--repeat 5``)."""

# -- the workloads -------------------------------------------------------------


@task(executor="inline")
def noop_inline(i: int) -> int:
    return i


@task
def noop_thread(i: int) -> int:
    return i


@task
async def noop_async(i: int) -> int:
    return i


@external
def gate() -> None:
    """Never posted: the run stops ``waiting`` here after all its effects."""


async def replay_seq(inputs: dict[str, int], ctx: Any) -> Any:
    for i in range(inputs["n"]):
        await ctx.task(noop_inline, {"i": i})
    return await ctx.task(gate, {})


async def replay_par(inputs: dict[str, int], ctx: Any) -> Any:
    await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_inline, {"i": i})
    )
    return await ctx.task(gate, {})


async def fresh_thread(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_thread, {"i": i})
    )
    return len(out)


async def fresh_inline(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_inline, {"i": i})
    )
    return len(out)


async def fresh_async(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_async, {"i": i})
    )
    return len(out)


REPLAY_PROCESSES = {"seq": replay_seq, "par": replay_par}
FRESH_PROCESSES = {
    "thread": fresh_thread,
    "inline": fresh_inline,
    "async": fresh_async,
}

# -- child cases -----------------------------------------------------------------


class GcTimer:
    """Seconds spent in the cyclic garbage collector (via ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def reset(self) -> None:
        self.total = 0.0
        self.collections = [0, 0, 0]


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench_engine: check failed: {what}")


def child_setup(journal: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Engine(journal, durability="process") as engine:
        for name, process in REPLAY_PROCESSES.items():
            started = time.perf_counter()
            run = engine.run(process, {"n": n}, run_id=name)
            out[name] = time.perf_counter() - started
            _check(run.status == "waiting", f"setup {name}: status {run.status}")
            _check(run.stats.dispatched == n, f"setup {name}: {run.stats}")
    return out


def _open_raw(journal: str) -> Any:
    # The map must be at least the file, or a write finds it full.
    size = os.path.getsize(os.path.join(journal, "data.mdb")) + (64 << 20)
    return lmdb.open(journal, max_dbs=8, subdir=True, lock=True, map_size=size)


def _take_checkpoint(journal: str, run_id: str) -> bytes:
    """Remove the run's checkpoint (raw py-lmdb, before the engine opens it)."""
    env = _open_raw(journal)
    try:
        db = env.open_db(jf.DB_CHECKPOINTS, create=False)
        with env.begin(write=True, db=db) as txn:
            value: bytes | None = txn.pop(jf.run_prefix(run_id))
    finally:
        env.close()
    _check(value is not None, f"run {run_id} has no checkpoint to take")
    assert value is not None
    return value


def _put_checkpoint(journal: str, run_id: str, value: bytes) -> None:
    env = _open_raw(journal)
    try:
        db = env.open_db(jf.DB_CHECKPOINTS, create=False)
        with env.begin(write=True, db=db) as txn:
            txn.put(jf.run_prefix(run_id), value)
    finally:
        env.close()


def child_replay(
    journal: str, name: str, n: int, repeat: int, *, cold: bool = False
) -> dict[str, Any]:
    # The floor is measured before and after the resumes and the better kept:
    # a burst of the host's noise must not flatter the ratio.
    before = measure_floor(journal, name, max(3, repeat))
    process = REPLAY_PROCESSES[name]
    taken = _take_checkpoint(journal, name) if cold else None
    try:
        result = _timed_resumes(journal, name, process, n, repeat)
    finally:
        if taken is not None:
            _put_checkpoint(journal, name, taken)
    after = measure_floor(journal, name, max(3, repeat))
    result["floor"] = min(before, after, key=lambda f: f["per_event_us"])
    return result


def _timed_resumes(
    journal: str,
    name: str,
    process: Any,
    n: int,
    repeat: int,
) -> dict[str, Any]:
    walls: list[float] = []
    cpus: list[float] = []
    execs: list[float] = []
    gcs: list[float] = []
    gc_timer = GcTimer()
    with Engine(journal) as engine:
        for _ in range(repeat):
            gc.collect()
            gc_timer.reset()
            started = time.perf_counter()
            cpu = time.process_time()
            run = engine.resume(name, process=process)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            gcs.append(gc_timer.total)
            execs.append(run.stats.elapsed)
            _check(run.status == "waiting", f"replay {name}: status {run.status}")
            _check(run.stats.replayed == n, f"replay {name}: {run.stats}")
            _check(run.stats.dispatched == 0, f"replay {name}: {run.stats}")
    return {
        "walls": walls,
        "execs": execs,
        "best_s": min(walls),
        "cpu_s": min(cpus),
        "exec_s": execs[walls.index(min(walls))],
        "gc_s": gcs[walls.index(min(walls))],
    }


def child_memory(journal: str, name: str, n: int, mode: str) -> dict[str, Any]:
    process = REPLAY_PROCESSES[name]
    with Engine(journal) as engine:
        gc.collect()
        before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if mode == "tracemalloc":
            tracemalloc.start()
        run = engine.resume(name, process=process)
        peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else 0
        tracemalloc.stop()
        after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _check(run.stats.replayed == n, f"memory {name}: {run.stats}")
    return {
        "rss_before_mb": before_kb / 1024,
        "rss_after_mb": after_kb / 1024,
        "tracemalloc_peak_mb": peak / 2**20,
    }


def child_fresh(journal: str, name: str, n: int, repeat: int) -> dict[str, Any]:
    """``repeat`` fresh runs (each a new run id in one journal); the best, and all."""
    process = FRESH_PROCESSES[name]
    runs: list[dict[str, Any]] = []
    with Engine(journal) as engine:  # default durability: fsync
        gc_timer = GcTimer()
        for attempt in range(repeat):
            gc.collect()
            gc_timer.reset()
            started = time.perf_counter()
            cpu = time.process_time()
            run = engine.run(process, {"n": n}, run_id=f"fresh-{name}-{attempt}")
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu
            _check(run.status == "completed", f"fresh {name}: status {run.status}")
            _check(run.result == n and run.stats.dispatched == n, f"fresh {name}")
            runs.append(
                {
                    "wall_s": wall,
                    "exec_s": run.stats.elapsed,
                    "per_s": n / wall,
                    "cpu_s": cpu,
                    "gc_s": gc_timer.total,
                    "gc_collections": list(gc_timer.collections),
                    "commits": run.stats.commits,
                    "events": run.stats.events_written,
                }
            )
    best = max(runs, key=lambda r: r["per_s"])
    rates = [r["per_s"] for r in runs]
    cpus = [r["cpu_s"] for r in runs]
    return {
        **best,
        "all_per_s": rates,
        "median_per_s": statistics.median(rates),
        "all_cpu_s": cpus,
        "median_cpu_us": statistics.median(cpus) / n * 1e6,
    }


def child_profile(
    journal: str, case: str, n: int, top: int, profiler_name: str
) -> dict[str, Any]:
    """Profile one case; the setup journal must exist for replay cases."""
    replay = case.startswith("replay-")
    name = case.removeprefix("replay-" if replay else "fresh-")
    with Engine(journal) as engine:
        if replay:
            engine.resume(name, process=REPLAY_PROCESSES[name])  # warm

        def body() -> Any:
            if replay:
                return engine.resume(name, process=REPLAY_PROCESSES[name])
            return engine.run(FRESH_PROCESSES[name], {"n": n}, run_id=f"prof-{name}")

        if profiler_name == "pyinstrument":
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.0005)
            sampler.start()
            run = body()
            sampler.stop()
            text = sampler.output_text(unicode=True, show_all=False)
        else:
            profiler = cProfile.Profile()
            profiler.enable()
            run = body()
            profiler.disable()
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(top)
            stats.sort_stats("cumulative").print_stats(top)
            text = out.getvalue()
    return {"stats": str(run.stats), "profile": text}


def child_main(args: argparse.Namespace) -> None:
    case, journal, n = args.child, args.journal, args.n
    result: dict[str, Any]
    if case == "setup":
        result = child_setup(journal, n)
    elif case in ("replay-seq", "replay-par"):
        result = child_replay(journal, case.removeprefix("replay-"), n, args.repeat)
    elif case in ("cold-seq", "cold-par"):
        result = child_replay(
            journal, case.removeprefix("cold-"), n, args.repeat, cold=True
        )
    elif case.startswith(("rss-", "tracemalloc-")):
        mode, name = case.split("-")
        result = child_memory(journal, name, n, mode)
    elif case.startswith("fresh-"):
        result = child_fresh(journal, case.removeprefix("fresh-"), n, args.repeat)
    elif case.startswith("profile:"):
        result = child_profile(
            journal, case.removeprefix("profile:"), n, args.top, args.profiler
        )
    else:
        raise SystemExit(f"unknown child case {case!r}")
    print(json.dumps(result))


# -- the parent ----------------------------------------------------------------


def run_child(case: str, journal: Path, args: argparse.Namespace) -> dict[str, Any]:
    return _child.run_child(
        os.path.abspath(__file__),
        case,
        journal,
        [
            *("--n", str(args.n), "--repeat", str(args.repeat)),
            *("--top", str(args.top), "--profiler", args.profiler),
        ],
    )


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def _verdict(ok: bool) -> str:
    return "[green]meets[/green]" if ok else "[red]misses[/red]"


def report(args: argparse.Namespace, res: dict[str, Any], total: float) -> None:
    from rich.console import Console
    from rich.table import Table

    n = args.n
    table = Table(
        title=f"replay-engine engine benchmarks: n = {n:,} effects, best of"
        f" {args.repeat} resumes per replay case",
        title_justify="left",
    )
    table.add_column("benchmark")
    table.add_column("figure", justify="right")
    table.add_column("floor", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("CPU ratio", justify="right")
    table.add_column("target")
    table.add_column("notes")

    for case, label in (
        ("replay-seq", "sequential"),
        ("replay-par", "one parallel.map"),
        ("cold-seq", "sequential, no checkpoint (cold)"),
        ("cold-par", "one parallel.map, no checkpoint (cold)"),
    ):
        if case not in res:
            continue
        rep = res[case]
        floor = rep["floor"]
        per_effect = rep["best_s"] / n
        floor_effect = 2 * floor["per_event_us"] / 1e6
        cpu_floor_effect = 2 * floor["cpu_per_event_us"] / 1e6
        ratio = per_effect / floor_effect
        cpu_ratio = rep["cpu_s"] / n / cpu_floor_effect
        table.add_row(
            f"replay, {label}",
            f"{_us(per_effect)} / effect",
            f"{_us(floor_effect)} / effect",
            f"{ratio:.1f}x",
            f"{cpu_ratio:.1f}x",
            f"≤ {REPLAY_TARGET_RATIO:g}x {_verdict(ratio <= REPLAY_TARGET_RATIO)}",
            f"resume {rep['best_s']:.2f} s = {n / rep['best_s']:,.0f} effects/s;"
            f" floor {floor['per_event_us']:.2f} µs/event x 2;"
            f" cyclic GC {rep['gc_s'] / rep['best_s']:.0%} of the resume",
        )
        exec_per = rep["exec_s"] / n
        table.add_row(
            "  of which: re-executing the process",
            f"{_us(exec_per)} / effect",
            "",
            f"{exec_per / floor_effect:.1f}x",
            "",
            "",
            "run.stats.elapsed; the rest"
            f" ({_us(per_effect - exec_per)}/effect) is loading the journal",
        )
    for name, label in (
        ("thread", "sync tasks, thread pool (default)"),
        ("inline", 'sync tasks, executor="inline"'),
        ("async", "async tasks"),
    ):
        if f"fresh-{name}" not in res:  # --replay-only
            continue
        fresh = res[f"fresh-{name}"]
        rates = fresh["all_per_s"]
        median = statistics.median(rates)
        ok = median >= FRESH_TARGET_PER_S
        spread = ", ".join(f"{v / 1000:.1f}k" for v in rates)
        table.add_row(
            f"fresh parallel.map, {label}",
            f"median {median:,.0f} effects/s"
            f" ({min(rates) / 1000:.1f}k-{max(rates) / 1000:.1f}k)",
            "",
            "",
            "",
            f"median ≥ {FRESH_TARGET_PER_S:,.0f}/s {_verdict(ok)}",
            f"best {fresh['per_s']:,.0f}/s of {len(rates)} runs ({spread}/s);"
            f" {fresh['commits']:,} commits (fsync); {fresh['wall_s']:.2f} s ="
            f" {_us(fresh['wall_s'] / n)}/effect; CPU {fresh['cpu_s']:.2f} s;"
            f" cyclic GC {fresh['gc_s'] / fresh['wall_s']:.0%} of the run;"
            f" median CPU {fresh['median_cpu_us']:.1f} µs/effect",
        )
    for name, label in (("seq", "sequential"), ("par", "parallel.map")):
        if f"rss-{name}" not in res:
            continue
        rss = res[f"rss-{name}"]
        notes = f"peak RSS {rss['rss_before_mb']:.0f} → {rss['rss_after_mb']:.0f} MB"
        figure = f"+{rss['rss_after_mb'] - rss['rss_before_mb']:,.0f} MB RSS"
        tm = res.get(f"tracemalloc-{name}")
        if tm is not None:
            figure += f", {tm['tracemalloc_peak_mb']:,.0f} MB heap"
            notes += "; heap: tracemalloc peak"
        table.add_row(f"memory of one replay, {label}", figure, "", "", "", "", notes)
    setup = res.get("setup", {"seq": 0.0, "par": 0.0})
    table.add_row(
        "setup of the replay runs",
        f"{setup['seq']:.1f} s + {setup['par']:.1f} s",
        "",
        "",
        "",
        "",
        'durability="process", inline tasks',
    )
    console = Console(width=max(Console().width, 160))
    console.print(table)
    console.print(
        "floor: py-lmdb read-only env, cursor over the run's range of the events DB,"
        " msgspec decode of each envelope (no digest or chain check, no blob read);"
        " an effect is 2 events (requested + completed), so the floor per effect is"
        " 2 events. ratio: wall time (the target); CPU ratio: process CPU time,"
        " steadier on a shared host. RSS includes the LMDB map pages a resume"
        " touches; heap counts Python objects only."
    )
    console.print(f"total bench time {total:.0f} s; journals in {args.journal_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="effects per run")
    parser.add_argument("--repeat", type=int, default=3, help="timed resumes per case")
    parser.add_argument(
        "--no-tracemalloc",
        action="store_true",
        help="skip the tracemalloc children (they are the slowest part)",
    )
    parser.add_argument(
        "--profile",
        choices=[
            "replay-seq",
            "replay-par",
            "fresh-thread",
            "fresh-inline",
            "fresh-async",
        ],
        help="profile one case and print its hot spots instead of the table",
    )
    parser.add_argument("--top", type=int, default=30, help="rows of --profile")
    parser.add_argument(
        "--profiler",
        choices=["cprofile", "pyinstrument"],
        default="cprofile",
        help="for --profile: cProfile (deterministic) or pyinstrument (sampling;"
        " pip install pyinstrument)",
    )
    parser.add_argument(
        "--fresh-only",
        action="store_true",
        help="only the fresh parallel.map rows (issue 17: --repeat 5 at 20k, 100k)",
    )
    parser.add_argument(
        "--replay-only",
        action="store_true",
        help="only the replay rows (warm and cold) and their memory, no fresh runs",
    )
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--keep", help="put the journals here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return

    started = time.perf_counter()
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-engine-"))
    base.mkdir(parents=True, exist_ok=True)
    args.journal_dir = str(base) if args.keep else "a temporary directory (removed)"
    replay_journal = base / "replay"
    shutil.rmtree(replay_journal, ignore_errors=True)
    try:
        res: dict[str, Any] = {}
        if args.profile:
            if args.profile.startswith("replay-"):
                run_child("setup", replay_journal, args)
                journal = replay_journal
            else:
                journal = base / f"profile-{args.profile}"
                shutil.rmtree(journal, ignore_errors=True)
            out = run_child(f"profile:{args.profile}", journal, args)
            print(out["stats"])
            print(out["profile"])
            return
        if not args.fresh_only:
            res["setup"] = run_child("setup", replay_journal, args)
        for case in (
            "replay-seq",
            "replay-par",
            "cold-seq",
            "cold-par",
            "rss-seq",
            "rss-par",
        ):
            if not args.fresh_only:
                res[case] = run_child(case, replay_journal, args)
        if not args.no_tracemalloc and not args.fresh_only:
            for case in ("tracemalloc-seq", "tracemalloc-par"):
                res[case] = run_child(case, replay_journal, args)
        for name in () if args.replay_only else FRESH_PROCESSES:
            journal = base / f"fresh-{name}"
            shutil.rmtree(journal, ignore_errors=True)
            res[f"fresh-{name}"] = run_child(f"fresh-{name}", journal, args)
        total = time.perf_counter() - started
        report(args, res, total)
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"n": args.n, "repeat": args.repeat, "total_s": total, **res},
                    indent=2,
                )
            )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
