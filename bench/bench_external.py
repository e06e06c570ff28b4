"""External-effect benchmarks: the cost of one ``iterate``, and a 1,000-step run.

Run from the project root::

    .venv/bin/python bench/bench_external.py             # about a minute
    .venv/bin/python bench/bench_external.py --repeat 9  # steadier
    .venv/bin/python bench/bench_external.py --sizes 100,1000 --steps 200

(a) One iterate with N completed effects in the journal (N = 100, 1,000,
10,000, and 0 as the start-up baseline). Setup (a child interpreter, at
``durability="process"`` to keep it short) starts ``fan_gate`` for each N: a
``ctx.parallel.map`` over N ``@external`` tasks followed by one more external
gate. It posts the N results with ``engine.post`` and iterates once, so the
run waits at the gate with N completed external effects (2N events: request
and result) behind it. Each timed iterate replays all N from the journal
(checked: ``stats.replayed == N``, nothing dispatched, status ``waiting``)
and records nothing new.

* in-process: ``Engine.iterate(run_id)`` in a fresh child interpreter with
  the engine open (default fsync durability), best of ``--repeat``;
* CLI: ``python -m replay_engine._cli iterate RUN_ID`` as a subprocess, best
  of ``--repeat``, wall time and the child's CPU time (``RUSAGE_CHILDREN``),
  which is steadier on a shared host. Includes interpreter start-up, imports,
  opening the journal, the replay, and printing the JSON document. Also the
  command's own ``stats.wall`` (from opening the journal to the finished
  document, without interpreter start-up and imports): the start-up of a
  fresh interpreter varies by tens of ms on a loaded host and swamps the
  per-effect part of the whole-subprocess figure for small N;
* floor: in the same child as the in-process case, before the engine opens
  the journal: py-lmdb read-only environment, a cursor over the run's range
  of the ``events`` database (key = run prefix + seq u64be), and a msgspec
  decode of every envelope (the value after its 32-byte digest). No digest or
  chain check, no blob read, no process re-execution.

µs per completed effect is ``(t(N) - t(0)) / N``: the start-up (opening the
journal, importing, the process's own frame) is reported separately as the
N = 0 figure. A least-squares fit ``t(N) = start-up + N x per-effect`` over
all N is printed as well; its slope is the figure to compare to the target.

(b) A run of 1,000 sequential ``@external`` effects driven through the API the
way an orchestrator drives it: ``run`` (waits at key 0), then ``post`` key i,
``iterate`` (waits at key i+1), ... until the run completes. Default fsync
durability. Reported: total time, and the iterate cost at the start and at
the end of the run (it grows linearly with the journal: the run as a whole is
quadratic with a small constant).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _child
from _floor import measure_floor

from replay_engine import Engine, external

ROOT = Path(__file__).resolve().parent.parent
TARGET_US = 5.0
SIZES = (0, 100, 1_000, 10_000)

# -- the workloads -------------------------------------------------------------


@external(kind="agent", name="bench.work")
def work(i: int) -> int:
    """Posted by the bench."""
    raise NotImplementedError


@external(kind="agent", name="bench.gate")
def gate() -> None:
    """Never posted: the run waits here after its N completed effects."""


async def fan_gate(inputs: dict[str, int], ctx: Any) -> Any:
    outs = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(work, {"i": i})
    )
    await ctx.task(gate, {})
    return len(outs)


async def sequential(inputs: dict[str, int], ctx: Any) -> int:
    total = 0
    for i in range(inputs["n"]):
        total += await ctx.task(work, {"i": i})
    return total


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench_external: check failed: {what}")


def _run_id(n: int) -> str:
    return f"ext-{n}"


# -- child cases ---------------------------------------------------------------


def child_setup(journal: str, sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Engine(journal, durability="process") as engine:
        for n in sizes:
            started = time.perf_counter()
            run_id = _run_id(n)
            run = engine.run(fan_gate, {"n": n}, run_id=run_id)
            _check(run.status == "waiting", f"setup {n}: {run.status}")
            for i in range(n):
                engine.post(run_id, f"0.{i}.0", result=i)
            run = engine.iterate(run_id, process=fan_gate)
            _check(run.pending == ["1"], f"setup {n}: pending {run.pending}")
            _check(run.stats.replayed == n, f"setup {n}: {run.stats}")
            out[str(n)] = {
                "seconds": time.perf_counter() - started,
                "events": len(engine.events(run_id)),
            }
    return out


def child_inprocess(journal: str, n: int, repeat: int) -> dict[str, Any]:
    run_id = _run_id(n)
    floor = measure_floor(journal, run_id, max(5, repeat))
    walls: list[float] = []
    cpus: list[float] = []
    with Engine(journal) as engine:
        before = len(engine.events(run_id))
        engine.iterate(run_id, process=fan_gate)  # warm: imports, first-call caches
        for _ in range(repeat):
            gc.collect()
            started = time.perf_counter()
            cpu = time.process_time()
            run = engine.iterate(run_id, process=fan_gate)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            _check(run.status == "waiting", f"iterate {n}: {run.status}")
            _check(run.stats.replayed == n, f"iterate {n}: {run.stats}")
            _check(run.stats.dispatched == 0, f"iterate {n}: {run.stats}")
        _check(len(engine.events(run_id)) == before, f"iterate {n} wrote events")
    return {
        "floor": floor,
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_s": min(cpus),
    }


def child_sequential(journal: str, steps: int) -> dict[str, Any]:
    iterates: list[float] = []
    posts: list[float] = []
    with Engine(journal) as engine:
        started = time.perf_counter()
        cpu = time.process_time()
        run = engine.run(sequential, {"n": steps}, run_id="seq")
        for i in range(steps):
            _check(run.pending == [str(i)], f"step {i}: pending {run.pending}")
            t = time.perf_counter()
            engine.post("seq", str(i), result=i)
            posts.append(time.perf_counter() - t)
            t = time.perf_counter()
            run = engine.iterate("seq", process=sequential)
            iterates.append(time.perf_counter() - t)
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu
        _check(run.status == "completed", f"sequential: {run.status}")
        _check(run.result == steps * (steps - 1) // 2, f"sequential: {run.result}")
        events = len(engine.events("seq"))
    tenth = max(1, steps // 10)
    return {
        "total_s": total,
        "cpu_s": cpu,
        "events": events,
        "post_mean_s": statistics.mean(posts),
        "iterate_first_s": statistics.mean(iterates[:tenth]),
        "iterate_last_s": statistics.mean(iterates[-tenth:]),
        "iterate_sum_s": sum(iterates),
        "post_sum_s": sum(posts),
    }


def child_main(args: argparse.Namespace) -> None:
    case = args.child
    result: dict[str, Any]
    if case == "setup":
        result = child_setup(args.journal, [int(s) for s in args.sizes.split(",")])
    elif case.startswith("inprocess-"):
        result = child_inprocess(args.journal, int(case.split("-")[1]), args.repeat)
    elif case == "sequential":
        result = child_sequential(args.journal, args.steps)
    else:
        raise SystemExit(f"unknown child case {case!r}")
    print(json.dumps(result))


# -- the parent ----------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REPLAY_ENGINE_JOURNAL", None)
    here = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(
        [here, str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def run_child(case: str, journal: Path, args: argparse.Namespace) -> dict[str, Any]:
    return _child.run_child(
        os.path.abspath(__file__),
        case,
        journal,
        [
            *("--repeat", str(args.repeat), "--steps", str(args.steps)),
            *("--sizes", ",".join(str(n) for n in args.size_list)),
        ],
        env=_env(),
    )


def measure_cli(journal: Path, n: int, repeat: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "replay_engine._cli",
        "--journal",
        str(journal),
        "iterate",
        _run_id(n),
    ]
    walls: list[float] = []
    cpus: list[float] = []
    inside: list[float] = []
    for _ in range(repeat + 1):  # the first warms the page cache and .pyc files
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env=_env()
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        _check(proc.returncode == 3, f"cli iterate {n}: exit {proc.returncode}")
        doc = json.loads(proc.stdout)
        _check(doc["stats"]["replayed"] == n, f"cli iterate {n}: {doc['stats']}")
        inside.append(doc["stats"]["wall"])
    return {
        "best_s": min(walls[1:]),
        "median_s": statistics.median(walls[1:]),
        "cpu_s": min(cpus[1:]),
        "command_s": min(inside[1:]),
    }


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares ``t = a + b*N``: (start-up a, seconds per effect b)."""
    ns = [float(n) for n, _ in points]
    ts = [t for _, t in points]
    mean_n, mean_t = statistics.mean(ns), statistics.mean(ts)
    var = sum((n - mean_n) ** 2 for n in ns)
    if var == 0:
        return mean_t, 0.0
    b = sum((n - mean_n) * (t - mean_t) for n, t in zip(ns, ts, strict=True)) / var
    return mean_t - b * mean_n, b


def report(args: argparse.Namespace, res: dict[str, Any], total: float) -> None:
    from rich.console import Console
    from rich.table import Table

    sizes = [n for n in args.size_list if n > 0]
    base_in = res["inprocess"]["0"]
    base_cli = res["cli"]["0"]
    table = Table(
        title=f"one iterate with N completed external effects (best of {args.repeat})",
        title_justify="left",
    )
    columns = (
        "N",
        "events",
        "in-process",
        "µs/effect",
        "CPU µs/effect",
        "CLI",
        "in command",
        "µs/effect",
        "floor µs/effect",
        "CPU ÷ floor",
    )
    for name in columns:
        table.add_column(name, justify="right")
    table.add_row(
        "0 (start-up)",
        str(res["setup"]["0"]["events"]),
        _ms(base_in["best_s"]),
        "",
        "",
        _ms(base_cli["best_s"]),
        _ms(base_cli["command_s"]),
        "",
        "",
        "",
    )
    for n in sizes:
        inp, cli = res["inprocess"][str(n)], res["cli"][str(n)]
        per_cpu = (inp["cpu_s"] - base_in["cpu_s"]) / n
        floor = inp["floor"]["best_s"] / n
        table.add_row(
            f"{n:,}",
            f"{res['setup'][str(n)]['events']:,}",
            _ms(inp["best_s"]),
            _us((inp["best_s"] - base_in["best_s"]) / n),
            _us(per_cpu),
            _ms(cli["best_s"]),
            _ms(cli["command_s"]),
            _us((cli["command_s"] - base_cli["command_s"]) / n),
            _us(floor),
            f"{per_cpu / floor:.1f}x",
        )
    console = Console(width=max(Console().width, 160))
    console.print(table)
    fits = Table(
        title="linear fit t(N) = start-up + N x per-effect (least squares over all N)",
        title_justify="left",
    )
    for name in ("iterate", "start-up", "per effect", "target", "verdict"):
        fits.add_column(name, justify="right" if name != "iterate" else "left")
    for label, key, field in (
        ("in-process, wall", "inprocess", "best_s"),
        ("in-process, CPU", "inprocess", "cpu_s"),
        ("CLI subprocess, wall", "cli", "best_s"),
        ("CLI subprocess, CPU", "cli", "cpu_s"),
        ("CLI, inside the command", "cli", "command_s"),
    ):
        a, b = _fit([(n, res[key][str(n)][field]) for n in args.size_list])
        if b <= 0:  # start-up noise larger than the per-effect part
            verdict = "[yellow]noise[/yellow]"
        elif b * 1e6 < TARGET_US:
            verdict = "[green]meets[/green]"
        else:
            verdict = "[red]misses[/red]"
        fits.add_row(label, _ms(a), f"{b * 1e6:.2f} µs", f"< {TARGET_US:g} µs", verdict)
    floors = [(n, res["inprocess"][str(n)]["floor"]["best_s"]) for n in args.size_list]
    a, b = _fit(floors)
    fits.add_row("floor (scan + decode)", "", f"{b * 1e6:.2f} µs", "", "")
    console.print(fits)
    seq = res["sequential"]
    steps = args.steps
    seq_table = Table(
        title=f"a run of {steps:,} sequential external effects through the API"
        " (run, then post + iterate per step; fsync)",
        title_justify="left",
    )
    seq_columns = (
        "total",
        "CPU",
        "of which iterate",
        "of which post",
        "post (mean)",
        "iterate, first 10%",
        "iterate, last 10%",
        "events",
    )
    for name in seq_columns:
        seq_table.add_column(name, justify="right")
    seq_table.add_row(
        f"{seq['total_s']:.2f} s",
        f"{seq['cpu_s']:.2f} s",
        f"{seq['iterate_sum_s']:.2f} s",
        f"{seq['post_sum_s']:.2f} s",
        _ms(seq["post_mean_s"]),
        _ms(seq["iterate_first_s"]),
        _ms(seq["iterate_last_s"]),
        f"{seq['events']:,}",
    )
    console.print(seq_table)
    console.print(
        "µs/effect = (t(N) - t(0)) / N, t(0) being an iterate of a run with no"
        " completed effect. CPU: process CPU time (in-process: time.process_time;"
        " CLI: RUSAGE_CHILDREN), steadier than wall time on a shared host. CLI = the"
        " whole subprocess; in command = the command's own stats.wall (opening the"
        " journal to the JSON document, without interpreter start-up). floor:"
        " py-lmdb cursor scan + msgspec decode of the run's events (2 per effect),"
        " no checks, measured in the in-process child."
    )
    console.print(
        f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs;"
        f" total bench time {total:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed iterates per case")
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in SIZES),
        help="completed effects per run (0 is the start-up baseline)",
    )
    parser.add_argument("--steps", type=int, default=1000, help="sequential run length")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--keep", help="put the journals here and keep them")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args)
        return
    args.size_list = sorted({0, *(int(s) for s in args.sizes.split(","))})

    started = time.perf_counter()
    base = Path(args.keep or tempfile.mkdtemp(prefix="bench-external-"))
    base.mkdir(parents=True, exist_ok=True)
    journal = base / "iterate"
    seq_journal = base / "sequential"
    shutil.rmtree(journal, ignore_errors=True)
    shutil.rmtree(seq_journal, ignore_errors=True)
    try:
        res: dict[str, Any] = {"setup": run_child("setup", journal, args)}
        res["inprocess"] = {
            str(n): run_child(f"inprocess-{n}", journal, args) for n in args.size_list
        }
        res["cli"] = {
            str(n): measure_cli(journal, n, args.repeat) for n in args.size_list
        }
        res["sequential"] = run_child("sequential", seq_journal, args)
        total = time.perf_counter() - started
        report(args, res, total)
        if args.json:
            Path(args.json).write_text(json.dumps({"total_s": total, **res}, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
