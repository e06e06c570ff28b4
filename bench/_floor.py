"""The replay floor both benchmarks measure beside their figures.

A raw read-only py-lmdb cursor over one run's range of the events database and
a msgspec decode of each envelope: no digest or chain check, no blob read.
"""

from __future__ import annotations

import time
from typing import Any

import lmdb
import msgspec

import journal_format as jf


def measure_floor(journal: str, run_id: str, repeat: int) -> dict[str, Any]:
    """Raw LMDB cursor scan + msgspec decode of one run's events (no checks)."""
    decoder = msgspec.msgpack.Decoder(jf.Envelope)
    prefix = jf.run_prefix(run_id)
    digest = jf.ADDRESS_SIZE
    env = lmdb.open(journal, readonly=True, max_dbs=8, subdir=True, lock=True)
    try:
        events_db = env.open_db(jf.DB_EVENTS, create=False)
        times: list[float] = []
        cpus: list[float] = []
        count = 0
        for _ in range(repeat):
            started = time.perf_counter()
            cpu = time.process_time()
            with env.begin(db=events_db) as txn:
                cursor = txn.cursor()
                count = 0
                if cursor.set_range(prefix):
                    for key, value in cursor:
                        if not key.startswith(prefix):
                            break
                        decoder.decode(value[digest:])
                        count += 1
            times.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
    finally:
        env.close()
    best = min(times)
    return {
        "events": count,
        "best_s": best,
        "per_event_us": best / count * 1e6,
        "cpu_per_event_us": min(cpus) / count * 1e6,
    }
