"""Journal size before and after ``gc`` and ``compact``, on many finished runs.

Run from the repository root:

    .venv/bin/python bench/bench_retention.py [--runs 10000] [--dir DIR]

Builds a journal of ``--runs`` completed runs in-process (``Engine.run``,
durability ``process``): each run has inputs of its own (a blob), a result
shared by every run (one blob) and one of its own (a blob), so the sweep has
both kinds to tell apart. Then prints the size of ``data.mdb`` after the
build, after ``gc`` of every run (LMDB keeps the file's size: the pages are
free, not returned), and after ``compact``, with the time of each step beside
a floor measured in the same run: for ``gc``, a raw py-lmdb transaction
deleting every record of a copy of the journal, one cursor delete each; for
``compact``, a plain copy and fsync of ``data.mdb``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay_engine import Engine, compact_journal, task


@task
def produce(value: Any) -> Any:
    return value


async def pipeline(inputs: dict[str, Any], ctx: Any) -> dict[str, Any]:
    shared = await ctx.task(produce, {"value": "shared-" + "s" * 500})
    own = await ctx.task(produce, {"value": inputs["own"]})
    return {"shared": len(shared), "own": own[:8]}


def size(journal: Path) -> int:
    return (journal / "data.mdb").stat().st_size


def raw_delete_all(journal: Path) -> float:
    env = lmdb.open(str(journal), max_dbs=8, subdir=True, sync=False, map_size=1 << 34)
    try:
        started = time.perf_counter()
        with env.begin(write=True) as txn:
            for name in (b"runs", b"events", b"keys", b"checkpoints", b"blobs"):
                try:
                    db = env.open_db(
                        name, txn=txn, create=False, dupsort=name == b"keys"
                    )
                except lmdb.NotFoundError:
                    continue
                cursor = txn.cursor(db=db)
                if cursor.first():
                    while cursor.delete() and cursor.key():
                        pass
        return time.perf_counter() - started
    finally:
        env.close()


def plain_copy(journal: Path, to: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(journal / "data.mdb", to)
    fd = os.open(to, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-retention-", dir=args.dir))
    journal = root / "journal"
    try:
        started = time.perf_counter()
        with Engine(str(journal), durability="process") as engine:
            for i in range(args.runs):
                engine.run(pipeline, {"own": f"own-{i}-" + "x" * 300}, run_id=f"r{i}")
        built = time.perf_counter() - started
        before = size(journal)
        floor_copy = root / "floor"
        shutil.copytree(journal, floor_copy)
        floor_gc = raw_delete_all(floor_copy)
        with Engine(str(journal)) as engine:
            started = time.perf_counter()
            removed = engine.gc(_dt.datetime.now(_dt.UTC) + _dt.timedelta(days=1))
            gc_time = time.perf_counter() - started
        after_gc = size(journal)
        floor_compact = plain_copy(journal, root / "copy.mdb")
        started = time.perf_counter()
        compacted = compact_journal(str(journal))
        compact_time = time.perf_counter() - started
        print(f"runs: {args.runs:,} completed, built in {built:.1f}s")
        print(f"data.mdb after the build:  {before:>14,} bytes")
        print(
            f"after gc of every run:     {after_gc:>14,} bytes"
            f"   ({len(removed.runs):,} runs, {removed.events:,} events,"
            f" {removed.blobs:,} blobs, {removed.bytes:,} bytes of records removed)"
        )
        print(f"after compact:             {compacted.after:>14,} bytes")
        print(
            f"gc:      {gc_time:6.2f}s   floor (raw LMDB delete of every record)"
            f" {floor_gc:6.2f}s"
            f"   ratio {gc_time / max(floor_gc, 1e-9):.1f}x"
        )
        print(
            f"compact: {compact_time:6.2f}s   floor (copy + fsync of data.mdb)    "
            f" {floor_compact:6.2f}s"
            f"   ratio {compact_time / max(floor_compact, 1e-9):.1f}x"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
