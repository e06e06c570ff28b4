"""``compat`` over a journal of many runs: events checked per second, beside the floor.

Records ``--runs`` runs (default 10,000) of a small process (five sequential
tasks, a parallel pair, a ``ctx.now()``: 19 events a run), then times
``Engine.check_compatible`` of a new version of the process that breaks one run
in ten. The floor, measured in the same run on the same journal: one read
transaction, a raw py-lmdb cursor over the whole ``events`` database and a
msgspec decode of every envelope (no digest or chain check, no blob read, no
process executed). Printed: events/s of each and the ratio ``compat / floor``
(time per event). Best of ``--repeat`` tries, interleaved.

    .venv/bin/python bench/bench_compat.py              # 10,000 runs: about a minute
    .venv/bin/python bench/bench_compat.py --runs 1000  # quick
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb
import msgspec

import journal_format as jf
from replay_engine import Engine, task


@task(name="bench.step", executor="inline")
def step(n: int, i: int) -> dict[str, int]:
    return {"n": n, "i": i, "note": "a result of more than 32 bytes: a blob"}


async def process(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    out = [await ctx.task(step, {"n": inputs["n"], "i": i}) for i in range(5)]
    out.extend(
        await ctx.parallel.all(
            [
                lambda: ctx.task(step, {"n": inputs["n"], "i": 10}),
                lambda: ctx.task(step, {"n": inputs["n"], "i": 11}),
            ]
        )
    )
    ctx.now()
    return out


async def process_v2(inputs: dict[str, Any], ctx: Any) -> list[Any]:
    """One run in ten (``n % 10 == 0``) now makes another third call."""
    last = 3 if inputs["n"] % 10 == 0 else 2
    out = [
        await ctx.task(step, {"n": inputs["n"], "i": i if i != 2 else last})
        for i in range(5)
    ]
    out.extend(
        await ctx.parallel.all(
            [
                lambda: ctx.task(step, {"n": inputs["n"], "i": 10}),
                lambda: ctx.task(step, {"n": inputs["n"], "i": 11}),
            ]
        )
    )
    ctx.now()
    return out


# Checked under the reference of the recorded process, as a deploy would.
process_v2.__qualname__ = process.__qualname__
process_v2.__name__ = process.__name__


def floor(journal: str) -> tuple[float, int]:
    """Seconds to read and decode every event of the journal, and how many."""
    decoder = msgspec.msgpack.Decoder(jf.Envelope)
    size = jf.ADDRESS_SIZE
    env = lmdb.open(journal, readonly=True, max_dbs=8, subdir=True, lock=True)
    try:
        db = env.open_db(jf.DB_EVENTS, create=False)
        started = time.perf_counter()
        count = 0
        with env.begin(db=db) as txn:
            for _key, value in txn.cursor():
                decoder.decode(value[size:])
                count += 1
        return time.perf_counter() - started, count
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dir", default=None, help="where to put the journal")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-compat-", dir=args.dir))
    journal = str(folder / "j")
    try:
        with Engine(journal, durability="process") as engine:
            started = time.perf_counter()
            for n in range(args.runs):
                engine.run(process, {"n": n}, run_id=f"r{n:06d}")
            print(
                f"recorded {args.runs} runs in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
        compat_s: list[float] = []
        floor_s: list[float] = []
        events = 0
        verdicts: dict[str, int] = {}
        for _ in range(args.repeat):
            f, events = floor(journal)
            floor_s.append(f)
            with Engine(journal) as engine:
                began = time.perf_counter()
                report = engine.check_compatible(process_v2)
                compat_s.append(time.perf_counter() - began)
            verdicts = {}
            for item in report:
                verdicts[item.verdict] = verdicts.get(item.verdict, 0) + 1
        best, best_floor = min(compat_s), min(floor_s)
        print(f"runs: {args.runs}, events: {events}, verdicts: {verdicts}")
        print(f"{'':24}{'seconds':>10}{'events/s':>14}{'us/event':>10}")
        for name, secs in (("compat (check_compatible)", best), ("floor", best_floor)):
            print(
                f"{name:24}{secs:>10.3f}{events / secs:>14,.0f}"
                f"{secs / events * 1e6:>10.2f}"
            )
        print(f"ratio compat / floor: {best / best_floor:.1f}x (time per event)")
        print(f"all tries: compat {compat_s}, floor {floor_s}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
