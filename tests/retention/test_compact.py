"""``compact``: smaller, runs byte-identical, refused beside a writer, SIGKILL-safe."""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from replay_engine import Engine, JournalBusyError, ReplayEngineError, compact_journal
from replay_engine._store import writer_lock
from tests.retention.raw import cli, dump, engine_child, start_holding, stop
from tests.retention.retention_flows import awaiting, pipeline


def _exports(journal: Path) -> dict[str, str]:
    """Every run's ``export --format jsonl``, by run id."""
    runs = json.loads(cli(journal, "runs", "--json").stdout)
    rows = runs["runs"] if isinstance(runs, dict) else runs
    out = {}
    for row in rows:
        done = cli(journal, "export", row["run_id"], "--format", "jsonl")
        assert done.returncode == 0, done.stderr
        out[row["run_id"]] = done.stdout
    return out


def _build(journal: Path, runs: int = 200, kept: int = 5) -> None:
    with Engine(str(journal), durability="process") as engine:
        for i in range(runs):
            engine.run(pipeline, {"own": f"own-{i}-" + "x" * 2000}, run_id=f"r{i}")
        time.sleep(0.01)
        cutoff = _dt.datetime.now(_dt.UTC)
        for i in range(kept):
            engine.run(pipeline, {"own": f"kept-{i}-" + "y" * 2000}, run_id=f"kept{i}")
        engine.run(awaiting, {"own": "w" * 300}, run_id="waiting")
        engine.gc(cutoff)


def test_compact_shrinks_and_keeps_every_run_byte_identical(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal)
    before = _exports(journal)
    assert sorted(before) == ["kept0", "kept1", "kept2", "kept3", "kept4", "waiting"]
    size = (journal / "data.mdb").stat().st_size
    done = cli(journal, "compact", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["before"] == size
    assert doc["after"] == (journal / "data.mdb").stat().st_size
    assert doc["after"] < size / 4, doc
    assert _exports(journal) == before
    assert cli(journal, "verify").returncode == 0
    assert [p.name for p in journal.iterdir() if p.name.startswith(".compact")] == []
    # The compacted journal takes writes again: a waiting run goes on.
    with Engine(str(journal)) as engine:
        engine.post("waiting", "20", result={"ok": True})
        assert engine.resume("waiting", process=awaiting).status == "completed"
        engine.run(pipeline, {"own": "after"}, run_id="after")
        assert engine.verify().ok


def test_compact_is_refused_while_a_run_holds_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal, runs=20)
    child = start_holding(journal, "busy", tmp_path / "side", seconds=30)
    try:
        refused = cli(journal, "compact", "--json")
        assert refused.returncode == 1, refused.stderr
        error = json.loads(refused.stdout)["error"]
        assert error["type"] == "JournalBusyError"
        assert str(child.pid) in error["message"]
        with pytest.raises(JournalBusyError) as caught:
            compact_journal(str(journal))
        assert caught.value.pids == [child.pid]
    finally:
        stop(child)
    # The holder is gone: compaction goes ahead, and the run it left is there.
    assert cli(journal, "compact").returncode == 0
    assert cli(journal, "status", "busy").returncode in (0, 1)
    assert cli(journal, "verify").returncode == 0


def test_compact_is_refused_while_an_engine_in_this_process_holds_it(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j"
    _build(journal, runs=5)
    with (
        Engine(str(journal)),
        pytest.raises(ReplayEngineError, match=r"close it first|open for writing"),
    ):
        compact_journal(str(journal))


def test_a_writer_opening_during_a_compaction_waits_then_gives_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "j"
    _build(journal, runs=5)
    monkeypatch.setattr(writer_lock, "OPEN_WAIT", 0.3)
    held = writer_lock.hold_exclusive(str(journal))  # as compact holds it
    try:
        started = time.monotonic()
        with pytest.raises(JournalBusyError, match="being compacted"):
            Engine(str(journal))
        assert 0.25 < time.monotonic() - started < 10
        with pytest.raises(JournalBusyError):
            Engine(str(journal), read_only=True)
    finally:
        held.release()
    with Engine(str(journal)) as engine:
        assert engine.verify().ok


def test_a_reader_open_before_the_compaction_keeps_its_view(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _build(journal, runs=5)
    reader = engine_child(
        "import sys, time\n"
        "from replay_engine import Engine\n"
        f"e = Engine({str(journal)!r}, read_only=True)\n"
        "print(len(e.runs()), flush=True)\n"
        "sys.stdin.readline() if False else time.sleep(1.5)\n"
        "print(len(e.runs()), e.verify().ok, flush=True)\n"
    )
    assert reader.stdout is not None
    first = reader.stdout.readline().split()
    assert cli(journal, "compact").returncode == 0
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out.split() == [first[0], "True"]


COMPACT_CHILD = r"""
import sys
from replay_engine import compact_journal
print("ready", flush=True)
compact_journal(sys.argv[1])
print("done", flush=True)
"""


def test_sigkill_at_any_point_of_compact_leaves_a_whole_journal(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    _build(pristine, runs=400, kept=10)
    expected = dump(pristine)
    # How long one compaction takes here, to spread the kills across it.
    timing = tmp_path / "timing"
    shutil.copytree(pristine, timing)
    started = time.monotonic()
    compact_journal(str(timing))
    span = max(time.monotonic() - started, 0.01)
    rng = random.Random(20261204)
    seen = {"old": 0, "new": 0}
    for attempt in range(12):
        journal = tmp_path / f"k{attempt}"
        shutil.copytree(pristine, journal)
        size = (journal / "data.mdb").stat().st_size
        child = engine_child(COMPACT_CHILD.replace("sys.argv[1]", repr(str(journal))))
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, span * 1.5))
        os.killpg(child.pid, signal.SIGKILL)
        stop(child)
        seen["new" if (journal / "data.mdb").stat().st_size < size else "old"] += 1
        assert cli(journal, "verify").returncode == 0
        assert dump(journal) == expected  # every record, byte for byte
        # Whatever was left, the journal works and compacts.
        assert cli(journal, "compact").returncode == 0
        assert not list(journal.glob(".compact*"))
    print("kills that left the old file, the new one:", seen)
    assert seen["old"] + seen["new"] == 12
