"""CLI start-up and streaming: wall time of each command beside two floors.

Run from the project root::

    .venv/bin/python bench/bench_cli.py              # about half a minute
    .venv/bin/python bench/bench_cli.py --repeat 21  # steadier
    .venv/bin/python bench/bench_cli.py --events 100000   # also the log/export stream

Each figure is the median wall time of ``--repeat`` fresh subprocesses
(interpreter start-up, imports, opening the journal, printing), measured in
the same run as two floors: ``python -c pass`` (a bare interpreter) and
``python -c "import click, rich"`` (what any CLI on our stack pays). The target
for ``--help``, ``--version``, ``status``, ``runs``, ``pending`` and ``post``
is 150 ms on an idle machine; the ratio to the click+rich floor is what to
compare across machines.

The journal is set up in a temporary directory by a child interpreter: a run
``w`` waiting at one external effect (for ``status``, ``pending``), and one
waiting run per ``post`` repetition and one for its warm-up (each post is to a
fresh run, so each is a real post). With ``--events N``, a run of N events
too, and the time to the first line of ``log``, ``export`` and ``replay`` on
it (read from the pipe while the command runs), and the time for
``log | head -3`` to end.

Bytecode: every child runs with a warm bytecode cache in a temporary
``PYTHONPYCACHEPREFIX`` (each command is run once before it is timed), as an
installed package runs (pip compiles it at install; an editable install
writes ``__pycache__`` on first use). A host that sets
``PYTHONDONTWRITEBYTECODE`` on a tree without ``__pycache__`` otherwise
compiles every module of ours from source on every start (about 55 ms of a
``status``); ``--cold-bytecode`` measures that case (the environment as it
is, no warm-up).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOWS = textwrap.dedent(
    """
    from replay_engine import external, task

    @task(name="benchflows.inc")
    def inc(x: int) -> int:
        return x + 1

    @external(kind="agent", name="benchflows.review")
    def review(diff: str) -> dict:
        raise NotImplementedError

    async def waits(inputs, ctx):
        total = await ctx.task(inc, {"x": 1})
        return await ctx.task(review, {"diff": str(total)})

    async def big(inputs, ctx):
        n = inputs["n"]
        for i in range(n // 4):
            ctx.log("step", i=i)
        items = list(range(n * 3 // 8))
        out = await ctx.parallel.map(
            items, lambda i: ctx.task(inc, {"x": i}), limit=64
        )
        return len(out)
    """
)

SETUP = textwrap.dedent(
    """
    import sys
    import benchflows
    from replay_engine import Engine
    journal, posts, events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Engine(journal, durability="process") as engine:
        engine.run(benchflows.waits, {}, run_id="w")
        for i in range(posts):
            engine.run(benchflows.waits, {}, run_id=f"p{i}")
        if events:
            engine.run(benchflows.big, {"n": events}, run_id="big")
    """
)


def _env(work: Path, root: Path, *, cold: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(work), str(root)])
    env["COLUMNS"] = "120"
    if not cold:  # compiled once, then read from the cache (see the docstring)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def _children_cpu() -> float:
    """CPU seconds (user + system) of the waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(
    argv: list[str], env: dict[str, str], repeat: int, check: bool = False
) -> tuple[float, float]:
    """Median wall and CPU seconds of ``repeat`` runs of ``argv``.

    CPU includes the command's forked reading child (the parent waits for
    it); on a loaded host it moves much less than wall time.
    """
    walls, cpus = [], []
    if "PYTHONPYCACHEPREFIX" in env and not check:  # the warm-up run
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=False)
    for _ in range(repeat):
        cpu = _children_cpu()
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=check)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _first_line(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds to the first line on the pipe, and to the end of the command."""
    started = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        proc.stdout.readline()
        first = time.perf_counter() - started
        for _ in proc.stdout:
            pass
    return first, time.perf_counter() - started


def _head(argv: list[str], env: dict[str, str], lines: int) -> float:
    """Seconds for ``argv | head -LINES`` to end (the pipe closed early)."""
    started = time.perf_counter()
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        for _ in range(lines):
            proc.stdout.readline()
        proc.stdout.close()
        proc.wait(timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--events", type=int, default=0)
    parser.add_argument(
        "--cold-bytecode",
        action="store_true",
        help="keep the environment's bytecode settings and skip the warm-up",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=ROOT,
        help="the checkout whose replay_engine to measure (default: this one),"
        " e.g. another branch for an A/B with the same venv",
    )
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "benchflows.py").write_text(FLOWS, encoding="utf-8")
        journal = str(work / "journal")
        env = _env(work, args.root.resolve(), cold=args.cold_bytecode)
        # ``python -m`` puts the working directory first on sys.path: run
        # from the temporary directory so that --root's package is the one.
        os.chdir(work)
        subprocess.run(
            [py, "-c", SETUP, journal, str(args.repeat + 1), str(args.events)],
            env=env,
            check=True,
        )
        cli = [py, "-m", "replay_engine._cli", "--journal", journal]
        rows: list[tuple[str, list[str]]] = [
            ("python -c pass", [py, "-c", "pass"]),
            ("python -c 'import click, rich'", [py, "-c", "import click, rich"]),
            ("--help", [*cli, "--help"]),
            ("--version", [*cli, "--version"]),
            ("status w", [*cli, "status", "w"]),
            ("status w --json", [*cli, "status", "w", "--json"]),
            ("runs", [*cli, "runs"]),
            ("pending w", [*cli, "pending", "w"]),
        ]
        results: dict[str, tuple[float, float]] = {}
        for label, argv in rows:
            results[label] = _median(argv, env, args.repeat)
        post_walls, post_cpus = [], []
        if not args.cold_bytecode:  # warm-up: the spare run's post
            warm = [*cli, "post", f"p{args.repeat}", "1", "--result", "{}"]
            subprocess.run(warm, env=env, stdout=subprocess.DEVNULL, check=True)
        for i in range(args.repeat):
            argv = [*cli, "post", f"p{i}", "1", "--result", '{"ok": true}']
            wall, cpu = _median(argv, env, 1, check=True)  # each post is a new one
            post_walls.append(wall)
            post_cpus.append(cpu)
        results["post p 1"] = (
            statistics.median(post_walls),
            statistics.median(post_cpus),
        )
        floor, cpu_floor = results["python -c 'import click, rich'"]
        bytecode = "as the environment has it" if args.cold_bytecode else "warm"
        print(
            f"median of {args.repeat} subprocess runs (target: 150 ms wall),"
            f" bytecode {bytecode}, load average {os.getloadavg()[0]:.1f}"
        )
        print(f"{'command':<34}{'ms':>8}{'x click+rich':>14}{'CPU ms':>9}{'x':>7}")
        for label, (wall, cpu) in results.items():
            print(
                f"{label:<34}{wall * 1000:>8.0f}{wall / floor:>14.2f}"
                f"{cpu * 1000:>9.0f}{cpu / cpu_floor:>7.2f}"
            )
        if args.events:
            print(f"\nrun of {args.events} events")
            tries = 3  # each reads the whole run: medians of a few
            print(f"medians of {tries}, load average {os.getloadavg()[0]:.1f}")
            for name in ("log", "export", "replay"):
                _first_line([*cli, name, "big"], env)  # warm-up (bytecode)
                runs = [_first_line([*cli, name, "big"], env) for _ in range(tries)]
                first = statistics.median(f for f, _ in runs)
                total = statistics.median(t for _, t in runs)
                print(
                    f"{name:<8} first line {first * 1000:>7.0f} ms, all {total:>6.1f} s"
                )
            head = _head([*cli, "log", "big"], env, 3)
            print(f"log | head -3 ends after {head * 1000:.0f} ms")


if __name__ == "__main__":
    main()
