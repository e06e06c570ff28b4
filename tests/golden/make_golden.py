"""Write the golden journal of this format version: ``tests/golden/v<N>/``.

Usage (from the repository root, with the test venv)::

    .venv/bin/python -m tests.golden.make_golden          # refuses to overwrite
    .venv/bin/python -m tests.golden.make_golden --force  # only for a new format

It runs the processes of ``tests/golden/golden_flows.py`` through the public
API only, so the journal holds what a user's journal would hold:

* ``basics`` (completed): a retried task (``attempt_failed``), a log line,
  ``ctx.now/random/uuid`` values and a timer;
* ``externals`` (completed): twenty steps (enough for a checkpoint), an
  external effect claimed by a worker and posted by it, then a signal;
* ``externals-fork`` (waiting): a fork of ``externals`` just before the
  claim, resumed, so it waits on the external effect;
* ``abandons`` (failed): a failed branch, whose sibling external is abandoned.

The journal is then copied compacted (``lmdb`` ``copy(compact=True)``) to
``v<FORMAT_VERSION>/journal/data.mdb``, and ``manifest.json`` records the
replay-engine version that wrote it, its runs (status, result, event counts
per type) and where the fork, the checkpoint and the post are. The committed
files are never rewritten for the same format version: ``test_golden.py``
checks that every later reader still reads them.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import lmdb

import journal_format as jf
import replay_engine
from replay_engine import Engine
from tests.golden import golden_flows as flows

HERE = Path(__file__).resolve().parent
WORKER = "golden-worker"


def git_commit() -> str:
    """The checkout's commit, for the manifest (``unknown`` outside git)."""
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )
    return f"commit {proc.stdout.strip()}" if proc.returncode == 0 else "unknown"


def target_dir() -> Path:
    """Where this format version's golden journal lives."""
    return HERE / f"v{jf.FORMAT_VERSION}"


def write_runs(engine: Engine) -> dict[str, Any]:
    """Run the golden processes; what the manifest says beyond the counts."""
    engine.run(flows.basics, {"n": 21}, run_id="basics")

    run = engine.run(flows.externals, {"item": "report"}, run_id="externals")
    assert run.status == "waiting", run.status
    [effect] = engine.claim("externals", WORKER, lease=3600)
    claim_seq = next(
        s.seq for s in engine.events("externals") if jf.event_tag(s.event) == "claimed"
    )
    posted = {"accepted": True, "by": WORKER}
    engine.post("externals", effect.key, result=posted, by=WORKER)
    assert engine.resume("externals").status == "waiting"
    engine.post_event("externals", "go", {"at": "golden"})
    assert engine.resume("externals").status == "completed"

    # The fork keeps every event before the claim: it waits on the external.
    engine.fork("externals", claim_seq - 1, "externals-fork")
    assert engine.resume("externals-fork").status == "waiting"

    assert engine.run(flows.abandons, None, run_id="abandons").status == "failed"
    return {
        "fork": {"run": "externals-fork", "parent": "externals", "at": claim_seq - 1},
        "post": {"run": "externals", "key": effect.key, "result": posted},
    }


def describe_run(engine: Engine, run_id: str) -> dict[str, Any]:
    """A run's manifest entry: status, result or error, events per type."""
    info = engine.status(run_id)
    counts = collections.Counter(jf.event_tag(s.event) for s in engine.events(run_id))
    entry: dict[str, Any] = {
        "status": info.status,
        "events": info.events,
        "event_counts": dict(sorted(counts.items())),
    }
    if info.status == "completed":
        entry["result"] = engine.result(run_id)
    if info.error is not None:
        entry["error_type"] = info.error.type
    if info.pending:
        entry["pending"] = list(info.pending)
    return entry


def checkpoints(path: Path, run_ids: list[str]) -> dict[str, int]:
    """Run -> events its checkpoint covers (read with ``journal_format``)."""
    env = lmdb.open(str(path), max_dbs=8, readonly=True, lock=False)
    try:
        db = env.open_db(jf.DB_CHECKPOINTS, create=False)
        with env.begin(db=db) as txn:
            raw = {r: txn.get(jf.run_prefix(r)) for r in run_ids}
    finally:
        env.close()
    return {
        run_id: jf.decode_checkpoint(jf.unseal(data)[1]).events
        for run_id, data in sorted(raw.items())
        if data is not None
    }


def compact_copy(source: Path, target: Path) -> None:
    """Copy the LMDB environment ``source`` compacted into the empty ``target``."""
    target.mkdir(parents=True)
    env = lmdb.open(str(source), max_dbs=8, readonly=True, lock=False)
    try:
        env.copy(str(target), compact=True)
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace an existing one")
    args = parser.parse_args(argv)
    out = target_dir()
    if out.exists():
        if not args.force:
            print(f"{out} exists; a format version's golden journal is never rewritten")
            return 1
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "journal"
        with Engine(str(work)) as engine:
            extra = write_runs(engine)
            runs = {r.run_id: describe_run(engine, r.run_id) for r in engine.runs()}
        extra["checkpoints"] = checkpoints(work, sorted(runs))
        compact_copy(work, out / "journal")
    manifest = {
        "format_version": jf.FORMAT_VERSION,
        "written_by": f"replay-engine {replay_engine.__version__} ({git_commit()})",
        "runs": dict(sorted(runs.items())),
        **extra,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
