"""``Store.append(expect_events=N)``: a compare-and-append, and ``lock.probe``."""

from __future__ import annotations

from pathlib import Path

import journal_format as jf
from replay_engine._store.lock import RunLock, probe
from replay_engine._store.store import Store
from tests.helpers import new_run


def test_an_append_that_expects_the_count_writes(store: Store) -> None:
    new_run(store, "r")
    result = store.append("r", [jf.RunWaiting()], {}, status="waiting", expect_events=1)
    assert (result.moved, result.first_seq, result.count) == (False, 1, 1)
    assert store.require_run("r").status == "waiting"


def test_an_append_after_someone_elses_writes_nothing(store: Store) -> None:
    new_run(store, "r")
    store.append("r", [jf.SignalReceived(name="go", payload=b"\xc0")], {})  # a poster
    before = store.require_run("r")
    commits = store.commits
    result = store.append("r", [jf.RunWaiting()], {}, status="waiting", expect_events=1)
    assert result.moved and result.count == 0 and result.first_seq == 2
    after = store.require_run("r")
    assert (after.events, after.head, after.status) == (
        before.events,
        before.head,
        before.status,
    )
    assert [jf.event_tag(s.event) for s in store.read_events("r")] == [
        "run_started",
        "signal",
    ]
    assert store.commits == commits + 1


def test_probe_sees_a_holder_without_taking_the_lock(
    store: Store, journal_dir: Path
) -> None:
    new_run(store, "r")
    path = str(journal_dir)
    assert probe(path, "r").held is False
    assert not (journal_dir / "locks").exists()  # a probe creates nothing
    with RunLock(path, "r"):
        found = probe(path, "r")
        assert found.held is True and found.alive is True and found.pid is not None
        # Probing again does not disturb the holder or take the lock.
        assert probe(path, "r").held is True
    assert probe(path, "r").held is False
