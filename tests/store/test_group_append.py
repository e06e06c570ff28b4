"""Several runs' appends in one commit (``Store.append_group``, issue 17).

Each run's part is its own nested transaction: a part that fails leaves
nothing of itself (not even its blobs) and fails alone; the others commit,
in one write transaction. What a part writes is exactly what ``append`` alone
would have written.
"""

from __future__ import annotations

import journal_format as jf
from replay_engine._store.store import AppendResult, GroupItem, Store
from replay_engine.errors import RunExistsError, RunNotFoundError
from tests.helpers import effects, new_run, payload, started


def test_one_commit_for_several_runs_as_if_appended_alone(store: Store) -> None:
    for run_id in ("a", "b"):
        new_run(store, run_id)
    events_a, blobs_a = effects([(0,), (1,)])
    events_b, blobs_b = effects([(0,)], prefix="u")
    commits = store.commits
    results = store.append_group(
        [
            GroupItem("a", events_a, blobs_a, status="waiting"),
            GroupItem("b", events_b, blobs_b, counters=(3, 1)),
        ]
    )
    assert store.commits == commits + 1
    assert [(r.first_seq, r.count) for r in results if isinstance(r, AppendResult)] == [
        (1, 4),
        (1, 2),
    ]
    assert [s.event for s in store.read_events("a")][1:] == events_a
    assert [s.event for s in store.read_events("b")][1:] == events_b
    a, b = store.require_run("a"), store.require_run("b")
    assert (a.status, a.events) == ("waiting", 5)
    assert (b.dispatched, b.replayed, b.events) == (3, 1, 3)
    for address, data in {**blobs_a, **blobs_b}.items():
        assert store.get_blob(address) == data


def test_a_refused_part_fails_alone_and_leaves_nothing(store: Store) -> None:
    for run_id in ("ok", "bad"):
        new_run(store, run_id)
    before = store.require_run("bad")
    good, good_blobs = effects([(0,)])
    address, blobs = payload({"only": "in the refused part"})
    malformed = jf.EffectCompleted(key=b"\x00\xff\xff", result=address)
    results = store.append_group(
        [
            GroupItem("ok", good, good_blobs),
            GroupItem("missing", good, good_blobs),
            GroupItem("bad", [malformed], blobs),
        ]
    )
    assert isinstance(results[0], AppendResult)
    assert isinstance(results[1], RunNotFoundError)
    assert isinstance(results[2], jf.FormatError)
    assert store.require_run("ok").events == 3
    # The refused part's blob was put before its key was found malformed: the
    # nested transaction took it back with the rest.
    assert store.require_run("bad") == before
    assert store.raw_blobs([address]) == {address: None}
    assert store.get_run("missing") is None


def test_creations_join_the_commit(store: Store) -> None:
    new_run(store, "taken")
    event, blobs = started({"n": 1})
    results = store.append_group(
        [
            store.creating("fresh", event, blobs, deadline_ns=None),
            store.creating("taken", event, blobs),
        ]
    )
    assert isinstance(results[0], AppendResult)
    assert isinstance(results[1], RunExistsError)
    fresh = store.require_run("fresh")
    assert (fresh.status, fresh.events) == ("running", 1)
    assert [s.event for s in store.read_events("fresh")] == [event]
