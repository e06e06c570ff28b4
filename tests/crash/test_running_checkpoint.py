"""Running checkpoints (issue 17): a run SIGKILLed mid-run has one, and it is the fold.

A child interpreter records a long run (``running_flows``), which then blocks
in a thread task that says ``ready``; the test SIGKILLs it there (a real
process, a real LMDB journal). Each checkpoint found is checked against the
chain (``jf.checkpoint_mismatch``) and against a fold of the events it covers
(``assert_checkpoint_is_the_fold``); the resume must start from it and end as
an uncrashed run, with no completed step run again (the side file, written by
the steps themselves).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import selectors
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._run import journal as _journal
from replay_engine._store import running as _running
from replay_engine._store.store import Store
from tests.children import start_python
from tests.crash import running_flows
from tests.engine import flows
from tests.store._checks import assert_checkpoint_is_the_fold

RUN = "r"
N = 6000
"""Steps before the gate: 12,002 events, running checkpoints at 4,096, 6,144, 9,216."""

RECORD = r"""
import json, sys
from replay_engine import Engine
from tests.crash import running_flows
journal, name, inputs = sys.argv[1:4]
with Engine(journal, durability="process") as engine:
    run = engine.run(getattr(running_flows, name), json.loads(inputs), run_id="r")
print(json.dumps({"status": run.status, "result": run.result}), flush=True)
"""


def _start(tmp_path: Path, name: str, inputs: dict[str, int]) -> subprocess.Popen[str]:
    return start_python(
        RECORD,
        str(tmp_path / "journal"),
        name,
        json.dumps(inputs),
        **{
            running_flows.SIDE: str(tmp_path / "side"),
            running_flows.GATE: str(tmp_path / "gate"),
        },
    )


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Read the child's stdout until ``ready`` (bounded: a hang fails the test)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=1.0):
                line = proc.stdout.readline()
                if line.startswith("ready"):
                    return
                if not line:
                    break
    proc.kill()
    _, err = proc.communicate(timeout=30)
    raise AssertionError(f"the child never said ready:\n{err}")


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _crash(tmp_path: Path, name: str) -> None:
    proc = _start(tmp_path, name, {"n": N})
    try:
        _wait_ready(proc)
    finally:
        _kill(proc)


def _checked_checkpoint(journal: Path) -> tuple[jf.Checkpoint, int]:
    """The run's checkpoint, checked against its chain and its fold; run events."""
    store = Store(str(journal), access="read")
    try:
        raw = store.checkpoint_of(RUN)
        assert raw is not None, "the running run left no checkpoint"
        checkpoint = jf.unseal_checkpoint(raw)
        stored = store.read_events(RUN)
        digests = [s.digest for s in stored]

        def digest_of(seq: int) -> bytes | None:
            return digests[seq] if seq < len(digests) else None

        assert jf.checkpoint_mismatch(checkpoint, RUN, digest_of) is None
        assert_checkpoint_is_the_fold(store, RUN, checkpoint)
        return checkpoint, len(digests)
    finally:
        store.close()


def _side(tmp_path: Path) -> Counter[int]:
    return Counter(int(x) for x in (tmp_path / "side").read_text().split())


def _resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[int]]:
    """Resume the crashed run here; the run and the restored counts of its loads."""
    monkeypatch.setenv(running_flows.SIDE, str(tmp_path / "side"))
    monkeypatch.setenv(running_flows.RESUMING, "1")
    restored: list[int] = []
    real = Store.load_index

    def load_index(self: Store, *args: Any, **kwargs: Any) -> Any:
        index, count = real(self, *args, **kwargs)
        restored.append(count)
        return index, count

    monkeypatch.setattr(Store, "load_index", load_index)
    with Engine(str(tmp_path / "journal"), durability="process") as engine:
        run = engine.resume(RUN)
        assert engine.verify(RUN).ok
    return run, restored


@pytest.mark.parametrize(
    ("name", "result"),
    [("steps_then_gate", sum(range(N))), ("fan_then_gate", sum(range(N)))],
)
def test_a_run_killed_mid_run_has_a_running_checkpoint_and_resumes_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, result: int
) -> None:
    _crash(tmp_path, name)
    checkpoint, events = _checked_checkpoint(tmp_path / "journal")
    # The rule: a commit checkpoints once the uncovered events reach
    # max(RUNNING_MIN_EVENTS, covered / 2), so at most about that many (plus
    # the commit that crossed it) are left to fold one by one.
    uncovered = events - checkpoint.events
    assert checkpoint.events >= _journal.RUNNING_MIN_EVENTS
    assert uncovered < max(_journal.RUNNING_MIN_EVENTS, checkpoint.events // 2) + 64, (
        events,
        checkpoint.events,
    )
    run, restored = _resume(tmp_path, monkeypatch)
    assert run.status == "completed", run.error
    assert run.result == result
    assert restored and restored[0] == checkpoint.events
    assert run.stats.replayed >= N  # every step served from the journal
    # No completed step ran again: each step's note is there exactly once.
    assert _side(tmp_path) == Counter(range(N))


def _flip_a_bit(journal: Path) -> None:
    """Flip one bit in the middle of the run's stored checkpoint record."""
    env = lmdb.open(str(journal), max_dbs=8, subdir=True)
    try:
        db = env.open_db(jf.DB_CHECKPOINTS, create=False)
        with env.begin(write=True) as txn:
            raw = bytearray(txn.get(jf.run_prefix(RUN), db=db))
            raw[len(raw) // 2] ^= 0x10
            txn.put(jf.run_prefix(RUN), bytes(raw), db=db)
    finally:
        env.close()


def test_a_damaged_running_checkpoint_is_ignored_and_every_event_folded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _crash(tmp_path, "steps_then_gate")
    checkpoint, _ = _checked_checkpoint(tmp_path / "journal")
    _flip_a_bit(tmp_path / "journal")
    with caplog.at_level(logging.WARNING, logger="replay_engine"):
        run, restored = _resume(tmp_path, monkeypatch)
    assert any("checkpoint is damaged" in r.getMessage() for r in caplog.records)
    assert restored and restored[0] == 0  # every event folded instead
    assert run.status == "completed" and run.result == sum(range(N))
    assert _side(tmp_path) == Counter(range(N))
    # The resume's first commit wrote a good checkpoint again.
    again, _ = _checked_checkpoint(tmp_path / "journal")
    assert again.events > checkpoint.events


@pytest.mark.parametrize("damage", [False, True])
def test_a_post_between_two_commits_of_a_running_run_is_in_its_checkpoint(
    tmp_path: Path, damage: bool
) -> None:
    # 3,000 steps, the gate (where the test posts a signal), 6,000 more: the
    # checkpoint due after the post cannot be folded from the run's own
    # events alone (the signal lies among them), nor can the next one's
    # base have lost it.
    proc = _start(tmp_path, "steps_then_gate", {"n": 3000, "after": 6000})
    try:
        _wait_ready(proc)
        with Engine(str(tmp_path / "journal")) as engine:
            seq = engine.post_event(RUN, "ping", {"from": "test"})
        if damage:
            # The next running checkpoint cannot build on this one.
            _flip_a_bit(tmp_path / "journal")
        (tmp_path / "gate").touch()
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {
        "status": "completed",
        "result": sum(range(9000)),
    }
    checkpoint, events = _checked_checkpoint(tmp_path / "journal")
    assert checkpoint.events > seq
    assert [(s, name) for s, name, _ in checkpoint.signals] == [(seq, "ping")]
    assert events - checkpoint.events < checkpoint.events


def _spy_lmdb_folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Where each LMDB fold of a running checkpoint started (the fallback)."""
    starts: list[int] = []
    real: Callable[..., bool] = _running.fold_events

    def spy(txn: Any, dbs: Any, run_id: str, index: jf.CallIndex, *a: Any) -> bool:
        starts.append(index.events)
        return real(txn, dbs, run_id, index, *a)

    monkeypatch.setattr(_running, "fold_events", spy)
    return starts


def _spy_checkpoint_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The events each running checkpoint written from now on covers."""
    written: list[int] = []
    real = _running.RunningCheckpoints.write

    def write(self: _running.RunningCheckpoints, *args: Any) -> int:
        written.append(real(self, *args))
        return written[-1]

    monkeypatch.setattr(_running.RunningCheckpoints, "write", write)
    return written


def test_running_checkpoints_of_every_kind_of_event_are_folded_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny minimum, so the mixed process (tasks, values, timers, parallel
    # groups, logs, retries) is checkpointed many times while it runs, each
    # checkpoint built on the last one read back.
    monkeypatch.setattr(_journal, "RUNNING_MIN_EVENTS", 4)
    starts = _spy_lmdb_folds(monkeypatch)
    written = _spy_checkpoint_writes(monkeypatch)
    monkeypatch.setenv(flows.SIDE_ENV, str(tmp_path / "side.jsonl"))
    journal = tmp_path / "journal"
    with Engine(str(journal)) as engine:
        run = engine.run(flows.mixed_process, {"x": 3, "items": [0, 1, 2]}, run_id=RUN)
        assert run.status == "completed", run.error
    assert len(written) >= 3 and all(written), written
    assert starts == []  # nobody else appended: never read back from LMDB
    checkpoint, events = _checked_checkpoint(journal)
    assert checkpoint.events == written[-1]
    assert events - checkpoint.events < max(4, checkpoint.events) + 8


def test_a_fresh_run_checkpoints_without_reading_its_events_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a fan-out pays: the running checkpoints of a fresh run come from
    # memory; an LMDB fold here would cost every event a read, a digest
    # check and a decode.
    starts = _spy_lmdb_folds(monkeypatch)
    monkeypatch.setenv(running_flows.SIDE, str(tmp_path / "side"))
    monkeypatch.setenv(running_flows.GATE, str(tmp_path / "gate"))
    (tmp_path / "gate").touch()
    with Engine(str(tmp_path / "journal"), durability="process") as engine:
        run = engine.run(running_flows.fan_then_gate, {"n": N}, run_id=RUN)
        assert run.status == "completed", run.error
    assert starts == []
    checkpoint, _ = _checked_checkpoint(tmp_path / "journal")
    assert checkpoint.events >= _journal.RUNNING_MIN_EVENTS
    assert os.path.getsize(tmp_path / "side") > 0


def test_each_running_checkpoint_covers_half_again_the_last_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 17: a checkpoint is due once the uncovered events reach half the
    # covered ones, so a crash leaves at most about a third of a run's events
    # to fold one by one (a doubling rule left half). Sequential steps commit
    # two events at a time, so each checkpoint lands within one commit of the
    # rule's point.
    monkeypatch.setattr(_journal, "RUNNING_MIN_EVENTS", 32)
    monkeypatch.setenv(running_flows.SIDE, str(tmp_path / "side"))
    monkeypatch.setenv(running_flows.RESUMING, "1")  # the gate opens at once
    written = _spy_checkpoint_writes(monkeypatch)
    journal = tmp_path / "journal"
    with Engine(str(journal), durability="process") as engine:
        run = engine.run(running_flows.steps_then_gate, {"n": 400}, run_id=RUN)
        assert run.status == "completed", run.error
    assert len(written) >= 6, written
    for last, new in itertools.pairwise(written):
        # Due at uncovered >= last / 2 (and the minimum): not a commit later.
        due = max(32, -(-last // 2))
        assert due <= new - last < due + 2, (last, new, written)
    checkpoint, events = _checked_checkpoint(journal)
    assert checkpoint.events == written[-1]
    assert 2 * (events - checkpoint.events) < checkpoint.events + 4
