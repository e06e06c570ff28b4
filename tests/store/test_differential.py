"""The LMDB store against a dict-backed reference journal (a fake, not a mock).

Hypothesis drives both with the same creates, appends and reads, and after
every step checks that they agree; it also closes and reopens the store, so
what is compared is what LMDB kept.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

import journal_format as jf
from replay_engine._store.store import Store
from replay_engine.errors import RunExistsError, RunNotFoundError
from tests.strategies import payloads

RUN_IDS = ["a", "a1", "b", "a.1"]
KEYS = [(0,), (1,), (1, 0), (1, 1), (300,), (1, 0, 7)]

key_st = st.sampled_from(KEYS)


@st.composite
def event_and_blob(draw: st.DrawFn) -> tuple[Any, dict[bytes, bytes]]:
    """An event with a key from a small set (so keys repeat) and its blob."""
    key = jf.encode_key(draw(key_st))
    data = jf.encode_payload(draw(payloads(max_leaves=4)))
    address = jf.address_of(data)
    kind = draw(st.sampled_from(["requested", "completed", "log", "timer"]))
    if kind == "requested":
        event: Any = jf.EffectRequested(key=key, task="t", kind="task", args=address)
    elif kind == "completed":
        event = jf.EffectCompleted(key=key, result=address)
    elif kind == "log":
        event = jf.LogLine(key=key, ordinal=draw(st.integers(0, 3)), message="m")
    else:
        event = jf.TimerFired(key=key)
    blobs = {address: data} if kind in ("requested", "completed") else {}
    return event, blobs


class StoreAgreesWithModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="replay-diff-")
        self.path = f"{self.dir}/journal"
        self.store = Store(self.path, durability="process")
        self.runs: dict[str, list[Any]] = {}
        self.statuses: dict[str, str] = {}
        self.blobs: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(run_id=st.sampled_from(RUN_IDS), inputs=payloads(max_leaves=4))
    def create_run(self, run_id: str, inputs: Any) -> None:
        data = jf.encode_payload(inputs)
        address = jf.address_of(data)
        event = jf.RunStarted(process="m:p", fingerprint="f", inputs=address)
        if run_id in self.runs:
            with pytest.raises(RunExistsError):
                self.store.create_run(run_id, event, {address: data})
            return
        self.store.create_run(run_id, event, {address: data})
        self.runs[run_id] = [event]
        self.statuses[run_id] = "running"
        self.blobs[address] = data

    @rule(
        run_id=st.sampled_from(RUN_IDS),
        batch=st.lists(event_and_blob(), max_size=6),
        status=st.none() | st.sampled_from(["waiting", "completed"]),
    )
    def append(
        self,
        run_id: str,
        batch: list[tuple[Any, dict[bytes, bytes]]],
        status: str | None,
    ) -> None:
        events = [e for e, _ in batch]
        blobs = {a: d for _, b in batch for a, d in b.items()}
        if run_id not in self.runs:
            with pytest.raises(RunNotFoundError):
                self.store.append(run_id, events, blobs, status=status)
            return
        result = self.store.append(run_id, events, blobs, status=status)
        assert (result.first_seq, result.count) == (len(self.runs[run_id]), len(events))
        self.runs[run_id] += events
        self.statuses[run_id] = status or self.statuses[run_id]
        self.blobs |= blobs

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def read_slice(self, data: st.DataObject) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.runs)))
        n = len(self.runs[run_id])
        start = data.draw(st.integers(0, n + 1))
        stop = data.draw(st.none() | st.integers(start, n + 1))
        got = self.store.read_events(run_id, start, stop)
        assert [e.seq for e in got] == list(range(n))[start:stop]
        assert [e.event for e in got] == self.runs[run_id][start:stop]

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), key=key_st)
    def lookup_key(self, data: st.DataObject, key: tuple[int, ...]) -> None:
        run_id = data.draw(st.sampled_from(sorted(self.runs)))
        encoded = jf.encode_key(key)
        expected = [
            seq
            for seq, e in enumerate(self.runs[run_id])
            if getattr(e, "key", None) == encoded
        ]
        assert self.store.seqs_for_key(run_id, encoded) == expected

    @precondition(lambda self: self.blobs)
    @rule(data=st.data())
    def get_blob(self, data: st.DataObject) -> None:
        address = data.draw(st.sampled_from(sorted(self.blobs)))
        assert self.store.get_blob(address) == self.blobs[address]

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.path, durability="process")

    @invariant()
    def runs_agree(self) -> None:
        records = {r.run_id: r for r in self.store.list_runs()}
        assert sorted(records) == sorted(self.runs)
        for run_id, events in self.runs.items():
            stored = self.store.read_events(run_id)
            assert [e.event for e in stored] == events
            record = records[run_id]
            assert record.events == len(events)
            assert record.head == stored[-1].digest
            assert record.status == self.statuses[run_id]
        assert dict(self.store.raw_items(jf.DB_BLOBS)) == self.blobs


StoreAgreesWithModel.TestCase.settings = settings(
    max_examples=30, stateful_step_count=25, deadline=None
)
test_store_agrees_with_model = StoreAgreesWithModel.TestCase
