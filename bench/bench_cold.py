"""Issue 17's figures: the first resume after a crash, fan-out memory, many runs.

Run from the project root::

    .venv/bin/python bench/bench_cold.py                      # everything (~4 min)
    .venv/bin/python bench/bench_cold.py --sizes 10000 --skip-rss --skip-many
    .venv/bin/python bench/bench_cold.py --profile seq:50000  # cProfile one resume
    # A/B on the same crash and load: this tree against another commit's
    git archive main replay_engine journal_format | tar -x -C /tmp/main-tree
    .venv/bin/python bench/bench_cold.py --skip-rss --skip-many --against /tmp/main-tree
    # issue 17's report (running checkpoints): both crash points, CPU and wall
    .venv/bin/python bench/bench_cold.py --sizes 10000,50000,200000 --tries 3 \
        --skip-rss --skip-many --against /tmp/s19c-base

(a) **Cold first resume.** A child process records a run with the real engine
(``durability="process"``, inline tasks: ``n`` sequential ``ctx.task`` calls,
or one ``ctx.parallel.map`` of ``n``), then calls a thread-pool task that
prints ``ready`` and sleeps; the parent SIGKILLs it. That is what a crash
leaves: every effect completed, one in flight, the run ``running``, and the
run's last *running checkpoint*: a running run checkpoints itself with a commit
once its uncovered events reach max(4,096, covered / 2) (``_run/journal.py
running_due``), so the crash leaves the events after its last checkpoint
uncovered (the ``covered`` column: events the resume restored from it). Rows
``worst`` crash the same way at the rule's worst point at most ``n`` effects:
the largest ``n' <= n`` whose crash lands just before the next checkpoint would
be written (about a third of the events uncovered; exact for ``seq``, whose
commits are two events; ``par`` commits in batches, so a few counts are crashed
and the one leaving the most events uncovered is resumed:
:func:`worst_candidates`; none below its second checkpoint). The A/B tree
(``--against``) resumes the same crashes, so it has this tree's running
checkpoints too: it compares resume code only. The state before running
checkpoints is the base tree's own ``bench_cold.py`` (its crashes have none).
The journal is copied before each try, so every try resumes the same crash.
Each try is a fresh child interpreter that imports the engine and first resumes
a tiny crashed run of the same process (3 effects) in a scratch journal: the
first import of the run layer and its first use, which a worker or any process
that resumed once has paid (the floor's child imports lmdb and msgspec before
timing too); then resumes a second copy of that tiny crash, now warm. The first
less the second (the tiny resume's own open, fold and commit, which the timed
resume pays itself) is its own column (``first resume s``) and the last ratio
column adds it back. Then it times, end to end, ``Engine(journal)`` +
``resume`` (open, read the checkpoint and fold the events after it with their
digest and chain checks, re-execute, dispatch the in-flight task again, commit
with the checkpoint, the run completes) and, in the same child, before and
after, the floor: a raw py-lmdb read transaction doing a key-by-key ``get`` of
each of the run's events and a msgspec decode of its envelope (no checks, no
fold). The phases are timed by wrapping ``Store.load_index`` (checkpoint +
fold) and ``Store.append`` (commits); re-execution is the rest. The bytecode
caches are written first (an installed package has them;
``PYTHONDONTWRITEBYTECODE=1`` would otherwise make every child compile the
runtime inside the timed resume). With ``--against DIR`` each try resumes the
same crash once with this tree and once with DIR's code (``PYTHONPATH``), in
alternating order, and both rows are printed.

(b) **Fan-out memory**: peak RSS (``ru_maxrss``) of a child doing one fresh
``parallel.map`` of ``--fanout`` async tasks at default (fsync) durability;
its interpreter start-up RSS is the baseline. And the peak RSS of the cold
resume of the largest size.

(c) **Many runs**: ``--runs`` concurrent runs of 10 sequential async effects
each, through ``run_async`` in one event loop of one engine, then the same
spread over ``--procs`` processes on one journal; aggregate effects/s beside
one run of 10 effects and one ``parallel.map`` of ``runs x 10`` in one run.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _child
import _cold_many
import lmdb
import msgspec

import journal_format as jf
from replay_engine import Engine, task

RESUMING = os.environ.get("BENCH_COLD_RESUMING") == "1"


@task(executor="inline")
def noop_inline(i: int) -> int:
    return i


@task
async def noop_async(i: int) -> int:
    return i


@task
def in_flight() -> int:
    """In the recording child: say so and hang (the parent kills it)."""
    if not RESUMING:
        # Where the run's checkpoints landed, on the line before.
        print(json.dumps(COVERAGES), flush=True)
        print("ready", flush=True)
        time.sleep(600)
    return 0


async def cold_seq(inputs: dict[str, int], ctx: Any) -> int:
    for i in range(inputs["n"]):
        await ctx.task(noop_inline, {"i": i})
    return int(await ctx.task(in_flight, {}))


async def cold_par(inputs: dict[str, int], ctx: Any) -> int:
    await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_inline, {"i": i})
    )
    return int(await ctx.task(in_flight, {}))


async def fanout(inputs: dict[str, int], ctx: Any) -> int:
    out = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(noop_async, {"i": i})
    )
    return len(out)


PROCESSES = {"seq": cold_seq, "par": cold_par}


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"bench_cold: check failed: {what}")


# -- children ------------------------------------------------------------------


COVERAGES: list[int] = []
"""In the recording child: the events each running checkpoint covered."""


def child_record(journal: str, name: str, n: int) -> None:
    from replay_engine._store.running import RunningCheckpoints

    checkpointed = RunningCheckpoints.checkpointed

    def noting(self: RunningCheckpoints) -> None:
        checkpointed(self)
        COVERAGES.append(self.covered)

    RunningCheckpoints.checkpointed = noting  # type: ignore[method-assign]
    with Engine(journal, durability="process") as engine:
        engine.run(PROCESSES[name], {"n": n}, run_id=name)


def floor(journal: str, run_id: str, events: int) -> tuple[float, float]:
    """Key-by-key raw get + msgspec decode of the run's events: (wall, cpu)."""
    decoder = msgspec.msgpack.Decoder(jf.Envelope)
    prefix = jf.run_prefix(run_id)
    keys = [jf.event_key(prefix, seq) for seq in range(events)]
    env = lmdb.open(journal, readonly=True, max_dbs=8, subdir=True, lock=True)
    try:
        db = env.open_db(jf.DB_EVENTS, create=False)
        started, cpu = time.perf_counter(), time.process_time()
        with env.begin(db=db) as txn:
            get, decode, cut = txn.get, decoder.decode, jf.ADDRESS_SIZE
            for key in keys:
                decode(get(key)[cut:])
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        env.close()


def child_resume(journal: str, name: str, n: int, profile: bool) -> dict[str, Any]:
    # A process that resumed once (a worker): the run layer is imported and
    # used once, here, untimed in the ratio but reported as its own column.
    # The extra is that resume less the same tiny resume again, now warm (a
    # second copy of the crash): its own open, fold and fsync'd commit are
    # what the timed resume pays itself, so they are not counted twice.
    def tiny(path: str) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with Engine(path) as warm:
            status = warm.resume(name, process=PROCESSES[name]).status
        _check(status == "completed", "warm")
        return time.perf_counter() - wall, time.process_time() - cpu

    first, first_cpu = tiny(os.environ["BENCH_COLD_WARM"])
    again, again_cpu = tiny(os.environ["BENCH_COLD_WARM"] + "-again")
    first, first_cpu = max(0.0, first - again), max(0.0, first_cpu - again_cpu)
    from replay_engine._store.store import Store

    phases = {"fold": 0.0, "append": 0.0}
    restored: list[int] = []

    def timed(method: Any, phase: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = method(*args, **kwargs)
                if phase == "fold":
                    restored.append(result[1])
                return result
            finally:
                phases[phase] += time.perf_counter() - started

        return wrapper

    Store.load_index = timed(Store.load_index, "fold")  # type: ignore[method-assign]
    Store.append = timed(Store.append, "append")  # type: ignore[method-assign]
    with Engine(journal, read_only=True) as reader:
        events = reader.status(name).events
    before = floor(journal, name, events)
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    with Engine(journal) as engine:
        run = engine.resume(name, process=PROCESSES[name])
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    _check(run.status == "completed", f"{name}: {run.status}")
    _check(run.stats.replayed == n and run.stats.dispatched == 1, str(run.stats))
    after = floor(journal, name, events)
    out: dict[str, Any] = {
        "events": events,
        "wall": wall,
        "cpu": cpu,
        "floor": min(before[0], after[0]),
        "floor_cpu": min(before[1], after[1]),
        "exec": run.stats.elapsed,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first": first,
        "first_cpu": first_cpu,
        "covered": restored[0] if restored else 0,
        **phases,
    }
    if profiler:
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(25)
        out["profile"] = text.getvalue()
    return out


def child_fanout(journal: str, n: int, profile: bool) -> dict[str, Any]:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    profiler = cProfile.Profile() if profile else None
    with Engine(journal) as engine:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        run = engine.run(fanout, {"n": n}, run_id="fanout")
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - started
    _check(run.result == n, "fanout result")
    out: dict[str, Any] = {
        "base_mb": base,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall": wall,
    }
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(35)
        out["profile"] = text.getvalue()
    return out


def child_main(args: argparse.Namespace) -> None:
    kind, _, rest = args.child.partition(":")
    result: dict[str, Any]
    if kind == "resume":
        name, n = rest.split(":")
        result = child_resume(args.journal, name, int(n), args.profile is not None)
    elif kind == "fanout":
        result = child_fanout(args.journal, int(rest), args.profile is not None)
    elif kind == "many":
        runs, tag = rest.split(":")
        result = _cold_many.child_many(args.journal, int(runs), tag)
    elif kind == "single":
        result = _cold_many.child_single(args.journal, int(rest))
    else:
        raise SystemExit(f"unknown child {args.child!r}")
    print(json.dumps(result))


# -- the parent ----------------------------------------------------------------


def crash(journal: Path, name: str, n: int) -> list[int]:
    """Record a run in a child and SIGKILL it with its last effect in flight.

    Returns the events each of its running checkpoints covered.
    """
    cmd = [sys.executable, __file__, "--record", name, "--n", str(n)]
    proc = subprocess.Popen(
        [*cmd, "--journal", str(journal)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    coverages: list[int] = json.loads(proc.stdout.readline())
    line = proc.stdout.readline()
    _check(line.strip() == "ready", f"recording child said {line!r}")
    time.sleep(0.3)  # the in-flight task's request commits before it runs
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return coverages


def child(case: str, journal: Path, args: argparse.Namespace, **env: str) -> Any:
    opts = ["--profile", args.profile] if args.profile else []
    return _child.run_child(
        os.path.abspath(__file__), case, journal, opts, env={**os.environ, **env}
    )


def _stats(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.2f} ({min(values):.2f}-{max(values):.2f})"


def next_due(covered: int) -> int:
    """The events at which a run checkpointed at ``covered`` is next due."""
    # This tree's rule (the parent's: the crashes are recorded with it); an
    # A/B tree's children need not have it.
    from replay_engine._run.journal import running_due

    uncovered = 1
    while not running_due(covered, uncovered):
        uncovered += 1
    return covered + uncovered


def worst_candidates(n: int, coverages: list[int]) -> list[int]:
    """Effect counts ``n' <= n`` whose crash may land just before a checkpoint.

    ``coverages``: the events each running checkpoint of the crash of ``n``
    covered. A crash of ``n'`` effects leaves ``2 n' + 2`` events (the start,
    two per effect, the in-flight request); with ``n' = d / 2 - 2`` for the
    events ``d`` at which the checkpoint after a coverage ``c`` is due
    (:func:`next_due`), that is ``d - 2``: about a third of the events are
    uncovered, if the commits up to ``c`` are the same as the longer run's.
    For ``seq`` (two-event commits) they are; ``par`` commits in batches that
    depend on ``n'``, so a few smaller counts are tried too and the crash that
    leaves the most events uncovered (not the largest share: a run too short
    to checkpoint has all its few events uncovered) is kept
    (:func:`uncovered`).
    """
    # Not the first checkpoint: a run too short to reach it again (its first
    # commit smaller) is checkpointed at its end instead.
    fits = sorted(fit for c in coverages[1:] if (fit := next_due(c) // 2 - 2) <= n)
    if not fits:
        return []
    top = fits[-1]
    return sorted({top, max(1, top - 2048), max(1, top - 4096)}, reverse=True)


def uncovered(journal: Path, run_id: str) -> int:
    """How many of the crashed run's events its checkpoint does not cover."""
    env = lmdb.open(str(journal), readonly=True, max_dbs=8, subdir=True, lock=False)
    try:
        with env.begin() as txn:
            runs = env.open_db(jf.DB_RUNS, txn=txn, create=False)
            cps = env.open_db(jf.DB_CHECKPOINTS, txn=txn, create=False)
            record = jf.decode_run_record(
                jf.unseal(txn.get(run_id.encode(), db=runs))[1]
            )
            events = record.events
            raw = txn.get(jf.run_prefix(run_id), db=cps)
            covered = 0 if raw is None else jf.unseal_checkpoint(raw).events
    finally:
        env.close()
    return events - covered


def bench_cold(base: Path, args: argparse.Namespace) -> None:
    print("## cold first resume after a SIGKILL (median (min-max) of tries)")
    print(
        "| case | effects | covered | resume s | floor s | ratio | CPU ratio"
        " | fold s | re-exec s | commits s | open, other s | first resume s"
        " | CPU ratio with it | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("seq", "par"):
        warm = base / f"warm-{name}"
        crash(warm, name, 3)
    worst: list[tuple[list[int], str]] = []
    for n in args.sizes:
        for name in ("seq", "par"):
            coverages = _cold_point(base, args, name, n, "")
            if not args.skip_worst:
                candidates = worst_candidates(n, coverages)
                if candidates:
                    worst.append(
                        (candidates[:1] if name == "seq" else candidates, name)
                    )
    for candidates, name in worst:
        _cold_point(base, args, name, candidates, " worst")


def _cold_point(
    base: Path, args: argparse.Namespace, name: str, n: int | list[int], label: str
) -> list[int]:
    """Crash a run of ``n`` effects, resume it ``--tries`` times, print the rows.

    With several ``n``, each is crashed and the one whose crash leaves the
    most events uncovered is resumed.
    """
    crashed = base / f"crashed-{name}"
    if isinstance(n, int):
        coverages = crash(crashed, name, n)
    else:
        best = -1
        for candidate in n:
            trial = base / f"trial-{name}-{candidate}"
            coverages = crash(trial, name, candidate)
            share = uncovered(trial, name)
            if share > best:
                best, chosen = share, candidate
                shutil.rmtree(crashed, ignore_errors=True)
                trial.rename(crashed)
            else:
                shutil.rmtree(trial)
        n = chosen
    trees: dict[str, list[Any]] = {
        "": [],
        **({args.against: []} if args.against else {}),
    }
    for attempt in range(args.tries):
        # Alternate the trees' order, so neither always runs first.
        order = list(trees) if attempt % 2 == 0 else list(trees)[::-1]
        for tree in order:
            copy = base / "try"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(crashed, copy)
            warm_copy = base / "warm-try"
            for scratch in (warm_copy, base / "warm-try-again"):
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.copytree(base / f"warm-{name}", scratch)
            extra = {"PYTHONPATH": tree} if tree else {}
            trees[tree].append(
                child(
                    f"resume:{name}:{n}",
                    copy,
                    args,
                    BENCH_COLD_RESUMING="1",
                    BENCH_COLD_WARM=str(warm_copy),
                    **extra,
                )
            )
    shutil.rmtree(crashed)
    for tree, tries in trees.items():
        case = name + label
        _cold_row(case if not tree else f"{case} ({tree})", n, tries)
    return coverages


def _cold_row(name: str, n: int, tries: list[dict[str, Any]]) -> None:
    ratio = [t["wall"] / t["floor"] for t in tries]
    cpu_ratio = [t["cpu"] / t["floor_cpu"] for t in tries]
    with_first = [(t["cpu"] + t["first_cpu"]) / t["floor_cpu"] for t in tries]
    med = sorted(tries, key=lambda t: t["wall"])[len(tries) // 2]
    # run.stats.elapsed (exec) includes the commits made while executing.
    reexec = med["exec"] - med["append"]
    other = med["wall"] - med["fold"] - med["exec"]
    covered = f"{med['covered']:,}/{med['events']:,}"
    print(
        f"| {name} | {n:,} | {covered} | {_stats([t['wall'] for t in tries])}"
        f" | {_stats([t['floor'] for t in tries])} | {_stats(ratio)}"
        f" | {_stats(cpu_ratio)} | {med['fold']:.3f} | {reexec:.3f}"
        f" | {med['append']:.3f} | {other:.3f} | {med['first']:.3f}"
        f" | {_stats(with_first)} | {med['rss_mb']:.0f} |",
        flush=True,
    )


def bench_rss(base: Path, args: argparse.Namespace) -> None:
    journal = base / "fanout"
    out = child(f"fanout:{args.fanout}", journal, args)
    shutil.rmtree(journal)
    print(
        f"\n## fresh fan-out of {args.fanout:,} async tasks (fsync): peak RSS"
        f" {out['peak_mb']:.0f} MB (interpreter + imports {out['base_mb']:.0f} MB),"
        f" {out['wall']:.1f} s = {args.fanout / out['wall']:,.0f} effects/s",
        flush=True,
    )


def precompile(root: Path) -> None:
    """Write the bytecode caches an installed package has (pip compiles them).

    Under ``PYTHONDONTWRITEBYTECODE=1`` (set on some hosts) nothing writes
    them, so every fresh child compiled the runtime's source on import: ~30 ms
    of each timed resume that a user's install does not pay.
    """
    for package in ("replay_engine", "journal_format"):
        compileall.compile_dir(root / package, quiet=1)
    compileall.compile_dir(Path(__file__).resolve().parent, quiet=1, maxlevels=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,50000,200000")
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--fanout", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument(
        "--against",
        help="cold resume only: also resume each crash with the code of this"
        " directory (a copy of another commit's tree, e.g. `git archive main"
        " replay_engine journal_format | tar -x -C DIR`), alternating with this"
        " tree's, for an A/B on the same load",
    )
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument(
        "--skip-worst", action="store_true", help="no rows at the worst crash point"
    )
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-many", action="store_true")
    parser.add_argument("--profile", help="seq:N, par:N or fanout:N: cProfile one")
    parser.add_argument("--record", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.record:
        child_record(args.journal, args.record, args.n)
        return
    if args.child:
        child_main(args)
        return
    args.sizes = [int(s) for s in args.sizes.split(",")]
    precompile(Path(__file__).resolve().parent.parent)
    if args.against:
        precompile(Path(args.against).resolve())
    base = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    try:
        if args.profile:
            kind, n = args.profile.split(":")
            if kind == "fanout":
                out = child(f"fanout:{n}", base / "f", args)
            else:
                crash(base / "c", kind, int(n))
                crash(base / "w", kind, 3)
                shutil.copytree(base / "w", base / "w-again")
                out = child(
                    f"resume:{kind}:{n}",
                    base / "c",
                    args,
                    BENCH_COLD_RESUMING="1",
                    BENCH_COLD_WARM=str(base / "w"),
                )
            print(out.pop("profile"))
            print(out)
            return
        if not args.skip_cold:
            bench_cold(base, args)
        if not args.skip_rss:
            bench_rss(base, args)
        if not args.skip_many:
            _cold_many.bench_many(base, args, child, os.path.abspath(__file__))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
