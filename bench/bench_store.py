"""Store throughput, each number printed beside a floor measured in the same run.

Run from the repository root:

    .venv/bin/python bench/bench_store.py [--dir DIR] [--quick]

Appends: ``Store.append`` at durability ``fsync`` and ``process`` with 1, 100
and 1000 events per commit, against a raw py-lmdb loop that puts the same
sealed event bytes with the same commit sizes and sync setting (one put per
event, nothing else: no index entry, no blob, no run record, no encoding).

Lookups, on one run of 100,000 events: ``read_events`` of the whole run, one
event at a time, and ``seqs_for_key``, against raw ``get`` + msgspec decode
loops. Floors use the same transaction granularity as the store call they are
compared with (one read transaction for a whole-run read, one per call for
per-call lookups).

The ratio is store time / floor time: 1.0x would be as fast as raw LMDB.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgspec
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import journal_format as jf  # noqa: E402
from replay_engine._store.store import Store  # noqa: E402

RUN = "bench"


@dataclass
class Row:
    section: str
    operation: str
    count: int
    store_s: float
    floor_s: float
    floor: str


# -- fixtures --------------------------------------------------------------------


def make_events(n: int, offset: int = 0) -> tuple[list[Any], dict[bytes, bytes]]:
    """``n`` events: requested/completed pairs at keys like ``7.1.0``, with blobs."""
    events: list[Any] = []
    blobs: dict[bytes, bytes] = {}
    for i in range(offset, offset + n):
        call, phase = divmod(i, 2)
        key = jf.encode_key((call // 100, call % 100, 0))
        data = jf.encode_payload({"i": call, "files": ["a.py", "b.py"], "ok": phase})
        address = jf.address_of(data)
        blobs[address] = data
        if phase == 0:
            events.append(
                jf.EffectRequested(
                    key=key, task="bench.task", kind="task", args=address
                )
            )
        else:
            events.append(jf.EffectCompleted(key=key, result=address))
    return events, blobs


def sealed_values(events: list[Any]) -> list[bytes]:
    """The bytes the store would write for ``events``, built before timing."""
    out = []
    prev = jf.genesis_digest(RUN)
    for seq, event in enumerate(events):
        envelope = jf.Envelope(v=1, seq=seq, prev=prev, at=time.time_ns(), event=event)
        sealed = jf.seal(jf.encode_record(envelope))
        prev = sealed[:32]
        out.append(sealed)
    return out


def open_raw(path: str, *, sync: bool) -> tuple[Any, Any, Any]:
    env = lmdb.open(
        path, map_size=1 << 30, max_dbs=8, sync=sync, metasync=sync, subdir=True
    )
    return env, env.open_db(jf.DB_EVENTS), env.open_db(jf.DB_KEYS, dupsort=True)


def best_of(
    repeats: int, store: Callable[[], float], floor: Callable[[], float]
) -> tuple[float, float]:
    """The best time of each, with the two interleaved so load hits both alike."""
    store_times, floor_times = [], []
    for _ in range(repeats):
        store_times.append(store())
        floor_times.append(floor())
    return min(store_times), min(floor_times)


# -- appends ---------------------------------------------------------------------


def bench_append(
    base: str, durability: str, batch: int, total: int, repeats: int
) -> Row:
    events, blobs = make_events(total)
    batches = [events[i : i + batch] for i in range(0, total, batch)]
    batch_blobs = [
        {
            a: blobs[a]
            for e in b
            for a in (getattr(e, "args", None), getattr(e, "result", None))
            if a
        }
        for b in batches
    ]
    values = sealed_values(events)
    prefix = jf.run_prefix(RUN)
    start, start_blobs = started_event()

    def store_once() -> float:
        path = tempfile.mkdtemp(dir=base)
        store = Store(path, durability=durability)  # type: ignore[arg-type]
        store.create_run(RUN, start, start_blobs)
        t0 = time.perf_counter()
        for chunk, chunk_blobs in zip(batches, batch_blobs, strict=True):
            store.append(RUN, chunk, chunk_blobs)
        elapsed = time.perf_counter() - t0
        assert store.require_run(RUN).events == total + 1
        store.close()
        shutil.rmtree(path)
        return elapsed

    def floor_once() -> float:
        path = tempfile.mkdtemp(dir=base)
        env, events_db, _ = open_raw(path, sync=durability == "fsync")
        keys = [jf.event_key(prefix, seq) for seq in range(total)]
        t0 = time.perf_counter()
        for i in range(0, total, batch):
            with env.begin(write=True, db=events_db) as txn:
                put = txn.put
                for j in range(i, min(i + batch, total)):
                    put(keys[j], values[j])
        elapsed = time.perf_counter() - t0
        env.close()
        shutil.rmtree(path)
        return elapsed

    store_s, floor_s = best_of(repeats, store_once, floor_once)
    return Row(
        "append",
        f"append, {durability}, {batch}/commit",
        total,
        store_s,
        floor_s,
        "raw put loop, same commits",
    )


def started_event() -> tuple[jf.RunStarted, dict[bytes, bytes]]:
    data = jf.encode_payload({"bench": True})
    address = jf.address_of(data)
    return jf.RunStarted(process="bench:p", fingerprint="00", inputs=address), {
        address: data
    }


# -- lookups ---------------------------------------------------------------------


def bench_lookups(base: str, total: int, sample: int, repeats: int) -> list[Row]:
    path = tempfile.mkdtemp(dir=base)
    store = Store(path, durability="process")
    start, start_blobs = started_event()
    store.create_run(RUN, start, start_blobs)
    chunk = 10_000
    for i in range(0, total - 1, chunk):
        events, blobs = make_events(min(chunk, total - 1 - i), offset=i)
        store.append(RUN, events, blobs)
    assert store.require_run(RUN).events == total

    env = store._handle.env
    events_db = store._dbs[jf.DB_EVENTS]
    keys_db = store._dbs[jf.DB_KEYS]
    prefix = jf.run_prefix(RUN)
    decoder = msgspec.msgpack.Decoder(jf.Envelope)
    rng = random.Random(1)
    seqs = [rng.randrange(total) for _ in range(sample)]
    event_keys = [jf.event_key(prefix, s) for s in range(total)]
    calls = sorted({(i // 2) for i in range(total - 1)})
    lookup_keys = [
        jf.encode_key((c // 100, c % 100, 0)) for c in rng.choices(calls, k=sample)
    ]
    rows: list[Row] = []

    def full_store() -> float:
        t0 = time.perf_counter()
        got = store.read_events(RUN)
        elapsed = time.perf_counter() - t0
        assert len(got) == total
        return elapsed

    def full_floor() -> float:
        t0 = time.perf_counter()
        with env.begin(buffers=False) as txn:
            get = txn.get
            decode = decoder.decode
            for k in event_keys:
                decode(get(k, db=events_db)[32:])
        return time.perf_counter() - t0

    rows.append(
        Row(
            "lookup",
            f"read_events, whole run of {total:,}",
            total,
            *best_of(repeats, full_store, full_floor),
            "raw get + decode, one txn",
        )
    )

    def one_store() -> float:
        t0 = time.perf_counter()
        for s in seqs:
            store.read_events(RUN, s, s + 1)
        return time.perf_counter() - t0

    def one_floor() -> float:
        t0 = time.perf_counter()
        decode = decoder.decode
        for s in seqs:
            with env.begin(buffers=False) as txn:
                decode(txn.get(event_keys[s], db=events_db)[32:])
        return time.perf_counter() - t0

    rows.append(
        Row(
            "lookup",
            "read_events(run, s, s + 1), random s",
            sample,
            *best_of(repeats, one_store, one_floor),
            "raw get + decode, txn per call",
        )
    )

    def key_store() -> float:
        t0 = time.perf_counter()
        for k in lookup_keys:
            store.seqs_for_key(RUN, k)
        return time.perf_counter() - t0

    def key_floor() -> float:
        t0 = time.perf_counter()
        unpack = jf.unpack_seq
        for k in lookup_keys:
            with env.begin(buffers=False) as txn:
                cursor = txn.cursor(db=keys_db)
                cursor.set_key(prefix + k)
                [unpack(v) for v in cursor.iternext_dup()]
        return time.perf_counter() - t0

    rows.append(
        Row(
            "lookup",
            "seqs_for_key, random key",
            sample,
            *best_of(repeats, key_store, key_floor),
            "raw dup scan + unpack, txn per call",
        )
    )
    store.close()
    shutil.rmtree(path)
    return rows


# -- output ----------------------------------------------------------------------


def render(rows: list[Row], console: Console) -> None:
    table = Table(title="replay-engine store vs. raw py-lmdb floor (same run)")
    table.add_column("operation")
    table.add_column("n", justify="right")
    table.add_column("store µs/op", justify="right")
    table.add_column("store ops/s", justify="right")
    table.add_column("floor µs/op", justify="right")
    table.add_column("floor ops/s", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("floor is")
    section = None
    for row in rows:
        if section is not None and row.section != section:
            table.add_section()
        section = row.section
        store_us = row.store_s / row.count * 1e6
        floor_us = row.floor_s / row.count * 1e6
        table.add_row(
            row.operation,
            f"{row.count:,}",
            f"{store_us:,.2f}",
            f"{row.count / row.store_s:,.0f}",
            f"{floor_us:,.2f}",
            f"{row.count / row.floor_s:,.0f}",
            f"{row.store_s / row.floor_s:.1f}x",
            row.floor,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to make the journals (default: a tmp dir)")
    parser.add_argument("--quick", action="store_true", help="smaller counts, one try")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    base = tempfile.mkdtemp(prefix="replay-bench-", dir=args.dir)
    repeats = 1 if args.quick else 2
    scale = 10 if args.quick else 1
    console.print(
        f"python {platform.python_version()}, py-lmdb {lmdb.__version__}"
        f" (LMDB {'.'.join(map(str, lmdb.version()))}), msgspec {msgspec.__version__},"
        f" {os.cpu_count()} CPUs; journals in {base}"
    )
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for durability in ("fsync", "process"):
            for batch, total in ((1, 1_000), (100, 20_000), (1000, 50_000)):
                count = max(batch, total // scale)
                rows.append(bench_append(base, durability, batch, count, repeats))
        rows += bench_lookups(base, 100_000 // scale, 20_000 // scale, repeats + 1)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    render(rows, console)
    console.print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
