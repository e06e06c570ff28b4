"""``gc``: finished runs before a time go, and every blob nothing left refers to."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import random
import signal
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._cli.retention_cmds import parse_cutoff
from tests.retention.raw import blob_addresses, cli, dump, engine_child, stop
from tests.retention.retention_flows import failing, pipeline

SHARED = "shared-" + "s" * 300


def _address(value: object) -> bytes:
    return jf.address_of(jf.encode_payload(value))


def _build(journal: Path) -> _dt.datetime:
    """Old runs (before the returned time) and new ones sharing payloads with them."""
    with Engine(str(journal), durability="process") as engine:
        for i in range(4):
            engine.run(
                pipeline,
                {"own": f"old-{i}-" + "o" * 300, "shared": SHARED},
                run_id=f"old{i}",
            )
        engine.run(failing, {"own": "old-failed-" + "f" * 300}, run_id="oldbad")
        # A fork of old1 shares old1's own payloads (blobs are not copied).
        engine.fork("old1", at=5, new_run_id="old1-fork")
        time.sleep(0.01)
        cutoff = _dt.datetime.now(_dt.UTC)
        time.sleep(0.01)
        # Kept: the same shared payload as the old runs, and an identical copy
        # of old2's own payload.
        engine.run(
            pipeline, {"own": "new-0-" + "n" * 300, "shared": SHARED}, run_id="new0"
        )
        engine.run(
            pipeline,
            {"own": "old-2-" + "o" * 300, "shared": "other-" + "q" * 300},
            run_id="new1",
        )
    return cutoff


def test_gc_deletes_old_finished_runs_and_only_unreferenced_blobs(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j"
    cutoff = _build(journal)
    blobs_before = blob_addresses(journal)
    own = {i: _address("old-" + str(i) + "-" + "o" * 300) for i in range(4)}
    assert set(own.values()) <= blobs_before
    with Engine(str(journal)) as engine:
        fork_status = engine.status("old1-fork").status
        removed = engine.gc(cutoff)
        assert sorted(removed.runs) == ["old0", "old1", "old2", "old3", "oldbad"]
        assert fork_status not in ("completed", "failed")  # a fork not yet resumed
        remaining = sorted(r.run_id for r in engine.runs())
        assert remaining == ["new0", "new1", "old1-fork"]
        assert engine.verify().ok
    blobs_after = blob_addresses(journal)
    assert _address(SHARED) in blobs_after  # shared with kept new0
    assert own[1] in blobs_after  # old1 is gone, but its fork shares the blob
    assert own[2] in blobs_after  # an identical payload of kept new1
    assert own[0] not in blobs_after and own[3] not in blobs_after
    assert removed.blobs == len(blobs_before - blobs_after) > 0
    # Every blob left is referenced: a second gc sweeps nothing.
    with Engine(str(journal)) as engine:
        assert engine.gc(cutoff).blobs == 0


def test_gc_keeps_blobs_a_fork_shares_after_its_parent_is_collected(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j"
    _build(journal)
    own1 = _address("old-1-" + "o" * 300)
    with Engine(str(journal)) as engine:
        engine.gc(_dt.datetime.now(_dt.UTC), statuses=["completed"])
        # old1 (completed) is gone; its fork is not finished, so it stays.
        assert "old1" not in {r.run_id for r in engine.runs()}
        assert engine.verify().ok
        resumed = engine.resume("old1-fork", process=pipeline)
        assert resumed.status == "completed"
    assert own1 in blob_addresses(journal)


def test_status_filter(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal)
    with Engine(str(journal)) as engine:
        removed = engine.gc(_dt.datetime.now(_dt.UTC), statuses=["failed"])
        assert removed.runs == ["oldbad"]
        with pytest.raises(ValueError, match="finished"):
            engine.gc(_dt.datetime.now(_dt.UTC), statuses=["waiting"])
    refused = cli(journal, "gc", "--finished-before", "now", "--status", "running")
    assert refused.returncode == 2


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal)
    data = journal / "data.mdb"
    before, digest = dump(journal), hashlib.sha256(data.read_bytes()).hexdigest()
    done = cli(journal, "gc", "--finished-before", "now", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["dry_run"] is True and len(doc["runs"]) == 7 and doc["blobs"] > 0
    assert dump(journal) == before
    assert hashlib.sha256(data.read_bytes()).hexdigest() == digest
    real = json.loads(cli(journal, "gc", "--finished-before", "now", "--json").stdout)
    assert {
        k: v for k, v in real.items() if k not in ("dry_run", "finished_before")
    } == {k: v for k, v in doc.items() if k not in ("dry_run", "finished_before")}


def test_cli_gc_by_age(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal)
    kept = cli(journal, "gc", "--finished-before", "7d", "--json")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["runs"] == []
    human = cli(journal, "gc", "--finished-before", "2999-01-01")
    assert human.returncode == 0 and "deleted 7 runs" in human.stdout
    bad = cli(journal, "gc", "--finished-before", "yesterday")
    assert bad.returncode == 2 and "--finished-before" in bad.stderr


def test_parse_cutoff() -> None:
    now = _dt.datetime(2026, 3, 1, 12, tzinfo=_dt.UTC)
    assert parse_cutoff("7d", now) == now - _dt.timedelta(days=7)
    assert parse_cutoff("90s", now) == now - _dt.timedelta(seconds=90)
    assert parse_cutoff("now", now) == now
    assert parse_cutoff("2026-01-31", now) == _dt.datetime(2026, 1, 31, tzinfo=_dt.UTC)
    assert parse_cutoff("2026-01-31T12:00:00+02:00", now).utcoffset() == _dt.timedelta(
        hours=2
    )
    with pytest.raises(ValueError):
        parse_cutoff("7 days", now)


WRITER = r"""
import sys
from replay_engine import Engine
from tests.retention.retention_flows import awaiting_shared, pipeline
with Engine(sys.argv[1], durability="process") as engine:
    for i in range(int(sys.argv[2])):
        shared = f"shared-{i}-" + "s" * 300
        # A finished run gc deletes, then a waiting run gc keeps, both with
        # the payload `shared`: the second stores no new blob, it reuses it.
        engine.run(pipeline, {"own": f"w-{i}", "shared": shared}, run_id=f"done{i}")
        engine.run(awaiting_shared, {"shared": shared}, run_id=f"wait{i}")
print("done")
"""


def test_gc_beside_a_writer_reusing_a_blob_loses_nothing(tmp_path: Path) -> None:
    """A run that reuses a blob gc is sweeping: mark and sweep are one transaction."""
    import subprocess
    import sys

    from tests.helpers import child_env

    journal = tmp_path / "j"
    _build(journal)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(journal), "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    sweeps = 0
    try:
        with Engine(str(journal), durability="process") as engine:
            while writer.poll() is None:
                # Every finished run so far goes: its `shared` blob stays only
                # if the waiting run that reuses it is marked.
                engine.gc(_dt.datetime.now(_dt.UTC) + _dt.timedelta(days=1))
                sweeps += 1
    finally:
        _, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert sweeps > 10
    with Engine(str(journal)) as engine:
        waiting = [r.run_id for r in engine.runs() if r.run_id.startswith("wait")]
        assert len(waiting) == 150
        report = engine.verify()
        assert report.ok, report.problems[:3]


GC_CHILD = r"""
import datetime, sys
from replay_engine import Engine
with Engine(sys.argv[1]) as engine:
    print("ready", flush=True)
    engine.gc(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1))
print("done", flush=True)
"""


def test_sigkill_during_gc_leaves_all_or_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    with Engine(str(journal), durability="process") as engine:
        for i in range(300):
            engine.run(pipeline, {"own": f"k-{i}-" + "k" * 300}, run_id=f"k{i}")
    before = dump(journal)
    rng = random.Random(13)
    outcomes = set()
    for _ in range(6):
        child = engine_child(GC_CHILD.replace("sys.argv[1]", repr(str(journal))))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.15))
        child.send_signal(signal.SIGKILL)
        stop(child)
        after = dump(journal)
        with Engine(str(journal)) as engine:
            assert engine.verify().ok
        if after == before:
            outcomes.add("untouched")
        else:
            assert not after[jf.DB_RUNS] and not after[jf.DB_EVENTS]
            assert not after[jf.DB_BLOBS]
            outcomes.add("done")
            break
    assert outcomes


def test_a_journal_emptied_by_gc_reopens_and_verifies(tmp_path: Path) -> None:
    """A large deletion leaves LMDB's last page unwritten: that is not truncation."""
    journal = tmp_path / "j"
    with Engine(str(journal), durability="process") as engine:
        for i in range(300):
            engine.run(pipeline, {"own": f"k-{i}-" + "k" * 300}, run_id=f"k{i}")
    with Engine(str(journal)) as engine:
        assert (
            len(engine.gc(_dt.datetime.now(_dt.UTC) + _dt.timedelta(days=1)).runs)
            == 300
        )
    with Engine(str(journal)) as engine:
        assert engine.runs() == [] and engine.verify().ok
    assert cli(journal, "verify").returncode == 0
