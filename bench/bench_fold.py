"""The store side of a cold first resume, alone: the fold and the checkpoint commit.

Run from the project root::

    .venv/bin/python bench/bench_fold.py --sizes 50000,200000
    # A/B on the same journals and load, alternating (DIR: another tree's code)
    git archive main replay_engine journal_format | tar -x -C /tmp/main-tree
    .venv/bin/python bench/bench_fold.py --against /tmp/main-tree
    .venv/bin/python bench/bench_fold.py --callgrind --against /tmp/main-tree

For each size and shape (``seq``: sequential ``ctx.task`` calls; ``par``: one
``parallel.map``), a run is recorded and SIGKILLed as ``bench_cold.py`` does
(no checkpoint). Then a child per tree, in alternating order, times in
process CPU: ``Store.load_index`` with no checkpoint (open nothing else: the
fold of every event with its digest, seq and chain checks), and
``put_checkpoint`` of that index in a write transaction that is aborted (the
checkpoint the first commit writes: overlay merge, encode, seal, put; no
flush). Best and median of ``--repeat`` each, per journal event. The floor is
``bench_cold.py``'s: a key-by-key ``get`` + envelope decode of the same events.

``--callgrind`` counts instructions instead (valgrind; load-independent): a
child that only folds, at n/2 and n effects, and the difference per event.
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
from pathlib import Path


def child(journal: str, run_id: str, repeat: int) -> None:
    import bench_cold

    from replay_engine._store import checkpoints
    from replay_engine._store.store import Store

    store = Store(journal)
    if repeat == 0:  # --callgrind: one fold and nothing else
        store.load_index(run_id, use_checkpoint=False)
        store.close()
        return
    env, dbs = store._handle.env, store._dbs
    loads, puts, floors = [], [], []
    for _ in range(repeat):
        started = time.process_time()
        index, _ = store.load_index(run_id, use_checkpoint=False)
        loads.append(time.process_time() - started)
        txn = env.begin(write=True)
        started = time.process_time()
        try:
            checkpoints.put_checkpoint(txn, dbs, run_id, index)
            puts.append(time.process_time() - started)
        finally:
            txn.abort()
        events = index.events
        del index
    store.close()  # the floor opens the journal with py-lmdb itself
    for _ in range(repeat):
        floors.append(bench_cold.floor(journal, run_id, events)[1])
    print(json.dumps({"events": events, "load": loads, "put": puts, "floor": floors}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--against", help="another tree's code (PYTHONPATH)")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeat)
        return
    import bench_cold

    base = Path(tempfile.mkdtemp(prefix="bench-fold-"))
    trees = ["", *([args.against] if args.against else [])]
    if args.callgrind:
        try:
            callgrind(base, trees, [int(s) for s in args.sizes.split(",")])
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    print(
        "| case | tree | events | fold µs/event best (med) | floor µs/event"
        " | fold / floor | checkpoint ms best (med) |"
    )
    print("|---|---|---|---|---|---|---|")
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            for name in ("seq", "par"):
                journal = base / f"{name}-{n}"
                bench_cold.crash(journal, name, n)
                out: dict[str, list[dict[str, list[float]]]] = {t: [] for t in trees}
                for pair in range(args.pairs):
                    for tree in trees if pair % 2 == 0 else trees[::-1]:
                        env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
                        cmd = [sys.executable, __file__, "--repeat", str(args.repeat)]
                        done = subprocess.run(
                            [*cmd, "--child", str(journal), name],
                            env=env,
                            stdout=subprocess.PIPE,
                            text=True,
                            check=True,
                        )
                        out[tree].append(json.loads(done.stdout.splitlines()[-1]))
                shutil.rmtree(journal)
                for tree, rows in out.items():
                    events = rows[0]["events"]
                    load = [x for r in rows for x in r["load"]]
                    put = [x for r in rows for x in r["put"]]
                    floor = min(x for r in rows for x in r["floor"])
                    per, med = 1e6 / events, statistics.median
                    print(
                        f"| {name} | {tree or 'this'} | {events:,}"
                        f" | {min(load) * per:.3f} ({med(load) * per:.3f})"
                        f" | {floor * per:.3f} | {min(load) / floor:.2f}"
                        f" | {min(put) * 1e3:.1f} ({med(put) * 1e3:.1f}) |",
                        flush=True,
                    )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _instructions(tree: str, journal: Path, name: str) -> int:
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        **({"PYTHONPATH": tree} if tree else {}),
    }
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    done = subprocess.run(
        [
            *cmd,
            sys.executable,
            __file__,
            "--repeat",
            "0",
            "--child",
            str(journal),
            name,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in done.stderr.splitlines() if "Collected :" in x)
    return int(line.rsplit(":", 1)[1])


def callgrind(base: Path, trees: list[str], sizes: list[int]) -> None:
    """Instructions per folded event: (count at n - count at n/2) / events between."""
    import bench_cold

    from replay_engine import Engine

    for n in sizes:
        for name in ("seq", "par"):
            journals, events = {}, {}
            for size in (n // 2, n):
                journals[size] = base / f"{name}-{size}"
                bench_cold.crash(journals[size], name, size)
                with Engine(str(journals[size]), read_only=True) as reader:
                    events[size] = reader.status(name).events
            for tree in trees:
                low = _instructions(tree, journals[n // 2], name)
                high = _instructions(tree, journals[n], name)
                per = (high - low) / (events[n] - events[n // 2])
                print(
                    f"{name} n={n} {tree or 'this'}: {per:,.0f} instructions per event"
                )


if __name__ == "__main__":
    main()
