"""``delete``: all of the run goes, nothing of another; a running run is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import (
    Engine,
    JournalWriteError,
    RunLockedError,
    RunNotFoundError,
)
from tests.retention.raw import cli, dump, of_run, start_holding, stop
from tests.retention.retention_flows import awaiting, failing, pipeline


def _journal(path: Path) -> None:
    with Engine(str(path), durability="process") as engine:
        for i in range(3):
            engine.run(pipeline, {"own": f"own-{i}-" + "x" * 300}, run_id=f"r{i}")
        engine.run(awaiting, {"own": "w" * 300}, run_id="w0")
        engine.run(failing, {"own": "f" * 300}, run_id="bad")
        engine.fork("r1", at=4, new_run_id="r1-fork")


def test_delete_removes_every_record_of_the_run_and_nothing_else(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    before = dump(journal)
    target = of_run(before, "w0")
    assert target[jf.DB_CHECKPOINTS], "the waiting run has a checkpoint to delete"
    assert target[jf.DB_KEYS] and target[jf.DB_EVENTS] and target[jf.DB_RUNS]
    with Engine(str(journal)) as engine:
        removed = engine.delete("w0")
    assert removed.runs == ["w0"]
    assert removed.events == len(target[jf.DB_EVENTS])
    assert removed.records == len(target[jf.DB_KEYS]) + len(target[jf.DB_CHECKPOINTS])
    assert removed.blobs == 0
    after = dump(journal)
    for name, records in before.items():
        gone = target.get(name, set())
        assert after[name] == records - gone, name.decode()
    # Blobs are never removed by delete: gc sweeps them.
    assert after[jf.DB_BLOBS] == before[jf.DB_BLOBS]
    with Engine(str(journal)) as engine:
        assert engine.verify().ok
        assert sorted(r.run_id for r in engine.runs()) == [
            "bad",
            "r0",
            "r1",
            "r1-fork",
            "r2",
        ]
        with pytest.raises(RunNotFoundError):
            engine.status("w0")


def test_a_run_id_that_is_a_prefix_of_another_keeps_the_other(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)  # r1 and r1-fork: prefixes are length-tagged
    before = dump(journal)
    with Engine(str(journal)) as engine:
        engine.delete("r1")
    after = dump(journal)
    assert of_run(after, "r1-fork") == of_run(before, "r1-fork")


def test_a_fork_outlives_its_deleted_parent(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    with Engine(str(journal)) as engine:
        expected = engine.run(pipeline, {"own": "own-1-" + "x" * 300}, run_id="again")
        engine.delete("r1")
        assert engine.verify().ok
        resumed = engine.resume("r1-fork", process=pipeline)
        assert resumed.status == "completed"
        assert resumed.result == expected.result
        assert engine.status("r1-fork").parent == "r1"  # a name, not a reference


def test_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    before = dump(journal)
    with Engine(str(journal)) as engine, pytest.raises(RunNotFoundError):
        engine.delete("nope")
    done = cli(journal, "delete", "nope", "--json")
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["error"]["type"] == "RunNotFoundError"
    assert dump(journal) == before


def test_read_only_engine_cannot_delete(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    with (
        Engine(str(journal), read_only=True) as engine,
        pytest.raises(JournalWriteError),
    ):
        engine.delete("r0")


def test_cli_delete_json(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    done = cli(journal, "delete", "r0", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["run_id"] == "r0" and doc["runs"] == ["r0"]
    assert doc["events"] > 0 and doc["blobs"] == 0 and doc["bytes"] > 0
    assert cli(journal, "status", "r0").returncode == 2


def test_a_running_run_is_refused_then_force_deletes_it(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    _journal(journal)
    child = start_holding(journal, "busy", tmp_path / "side", seconds=3)
    try:
        refused = cli(journal, "delete", "busy", "--json")
        assert refused.returncode == 1, refused.stderr
        error = json.loads(refused.stdout)["error"]
        assert error["type"] == "RunLockedError"
        assert "--force" in error["message"] and str(child.pid) in error["message"]
        assert cli(journal, "status", "busy").returncode == 0  # still there
        with Engine(str(journal)) as engine, pytest.raises(RunLockedError):
            engine.delete("busy")
        # --force: cancel (when the engine has it), then wait for the lock.
        started = time.monotonic()
        forced = cli(journal, "delete", "busy", "--force", "--json")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(forced.stdout)["runs"] == ["busy"]
        assert time.monotonic() - started < 30
    finally:
        stop(child)
    with Engine(str(journal)) as engine:
        assert "busy" not in {r.run_id for r in engine.runs()}
        assert engine.verify().ok


def test_delete_leaves_the_active_entry_of_a_run_whose_id_extends_its_prefix(
    tmp_path: Path,
) -> None:
    """The active index is keyed by run id, not by run prefix.

    A run id of 49 characters has the prefix ``b"1" + id`` (its length byte is
    the digit 1), which is also how the id ``"1" + id`` begins: deleting the
    first run must not take the second's entry in the index with it.
    """
    short = "x" * 49
    longer = "1" + short
    with Engine(str(tmp_path / "j"), durability="process") as engine:
        engine.run(pipeline, {"own": "a"}, run_id=short)
        engine.run(awaiting, {"own": "b"}, run_id=longer)
        assert engine.status(longer).status == "waiting"
        engine.delete(short)
        report = engine.verify()
        assert report.ok, [str(p) for p in report.problems]
        assert engine.status(longer).status == "waiting"
