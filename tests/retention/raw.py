"""Raw views of a journal for the retention tests: every record of every database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb

import journal_format as jf
from tests.helpers import child_env

FLOWS = "tests.retention.retention_flows"
DATABASES = (jf.DB_RUNS, jf.DB_EVENTS, jf.DB_KEYS, jf.DB_CHECKPOINTS, jf.DB_BLOBS)


def dump(path: str | os.PathLike[str]) -> dict[bytes, set[tuple[bytes, bytes]]]:
    """Every ``(key, value)`` of every database (no Engine may hold the journal)."""
    env = lmdb.open(os.fspath(path), max_dbs=8, subdir=True, readonly=True)
    try:
        out: dict[bytes, set[tuple[bytes, bytes]]] = {}
        with env.begin() as txn:
            for name in DATABASES:
                dupsort = name == jf.DB_KEYS
                db = env.open_db(name, txn=txn, create=False, dupsort=dupsort)
                out[name] = set(txn.cursor(db=db))
        return out
    finally:
        env.close()


def of_run(
    records: dict[bytes, set[tuple[bytes, bytes]]], run_id: str
) -> dict[bytes, set[tuple[bytes, bytes]]]:
    """The records that belong to ``run_id``: its run record and its prefix."""
    prefix = jf.run_prefix(run_id)
    out: dict[bytes, set[tuple[bytes, bytes]]] = {}
    for name, items in records.items():
        if name == jf.DB_BLOBS:
            continue
        mine = (
            (lambda key: key == run_id.encode())
            if name == jf.DB_RUNS
            else (lambda key: key.startswith(prefix))
        )
        out[name] = {(key, value) for key, value in items if mine(key)}
    return out


def blob_addresses(path: str | os.PathLike[str]) -> set[bytes]:
    """The addresses in ``blobs``."""
    return {k for k, _ in dump(path)[jf.DB_BLOBS]}


def cli(
    journal: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``replay-engine --journal JOURNAL ARGS`` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )


def start_holding(
    journal: Path, run_id: str, side: Path, seconds: float
) -> subprocess.Popen[str]:
    """A real ``replay-engine run`` child executing ``holding`` for ``seconds``.

    Returns once the run is inside its effect (the side file exists).
    """
    import json

    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replay_engine._cli",
            "--journal",
            str(journal),
            "run",
            f"{FLOWS}:holding",
            "--run-id",
            run_id,
            "--input",
            json.dumps({"path": str(side), "seconds": seconds}),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not side.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise AssertionError(f"the run child did not start: {child.communicate()}")
        time.sleep(0.02)
    return child


def stop(child: subprocess.Popen[str]) -> None:
    """Kill ``child`` (and its group) if it still runs, and reap it."""
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)


def engine_child(code: str) -> subprocess.Popen[str]:
    """A child interpreter running ``code`` (``sys.argv[1:]`` unused)."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        start_new_session=True,
    )
