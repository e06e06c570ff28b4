"""Sub-runs (``ctx.run_child``) on a real LMDB journal: the engine's side.

Tasks write a line to a side file when they run (``child_flows.SIDE_ENV``),
so "ran once" is seen from outside the journal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import ChildRunFailed, Engine, PostRejected, ReplayEngineError
from tests.subruns import child_flows as flows


def lines(side: Path) -> list[str]:
    return side.read_text().splitlines()


def outcomes_at(engine: Engine, run_id: str, key: str) -> list[jf.Event]:
    return [
        s.event
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectCompleted | jf.EffectFailed)
        and jf.key_bytes_to_text(s.event.key) == key
    ]


@pytest.mark.spec("JF-150")
@pytest.mark.spec("JF-152")
@pytest.mark.spec("JF-153")
def test_a_child_is_its_own_run_linked_to_its_parent(
    engine: Engine, side: Path
) -> None:
    run = engine.run(flows.parent, {}, run_id="p")
    assert run.status == "completed"
    assert run.result == {"first": 10, "child": {"name": "c", "sum": 50}, "last": 30}
    child = engine.status("p--1")  # JF-153: {parent}--{key}
    assert (child.status, child.child_of, child.child_key) == ("completed", "p", "1")
    assert engine.status("p").child_of is None
    # JF-150: the parent recorded the start at the key, as a `child` effect.
    [request] = [
        s.event
        for s in engine.events("p")
        if isinstance(s.event, jf.EffectRequested) and s.event.kind == "child"
    ]
    assert jf.key_bytes_to_text(request.key) == "1"
    assert request.task == "tests.subruns.child_flows:leaf"
    assert engine.payload(request.args) == {
        "process": "tests.subruns.child_flows:leaf",
        "inputs": {"name": "c", "n": 2},
        "run_id": None,
    }
    assert sorted(lines(side)) == ["step c 2", "step c 3", "step p 1", "step p 3"]
    assert engine.verify().ok


@pytest.mark.spec("JF-151")
def test_the_parent_replays_the_child_result_from_its_own_journal(
    engine: Engine, side: Path
) -> None:
    engine.run(flows.parent, {}, run_id="p")
    [outcome] = outcomes_at(engine, "p", "1")
    assert isinstance(outcome, jf.EffectCompleted)
    child_end = engine.events("p--1")[-1].event
    assert isinstance(child_end, jf.RunCompleted)
    assert outcome.result == child_end.result  # the same payload, not a copy
    # A fork of the parent after the child's outcome re-runs nothing of it:
    # the child's result comes from the copied prefix.
    engine.fork("p", at=len(engine.events("p")) - 1, new_run_id="pf")
    before = len(lines(side))
    forked = engine.resume("pf", process=flows.parent)
    assert forked.result == {"first": 10, "child": {"name": "c", "sum": 50}, "last": 30}
    assert len(lines(side)) == before
    assert engine.status("pf").child_of is None
    assert [r.run_id for r in engine.runs() if r.child_of == "pf"] == []
    # Time travel answers the child from the parent's journal too.
    assert engine.replay("p").result == forked.result


@pytest.mark.spec("JF-151")
def test_a_failed_child_raises_child_run_failed_live_and_on_replay(
    engine: Engine, side: Path
) -> None:
    run = engine.run(flows.catches, {}, run_id="p")
    assert run.status == "completed"
    assert run.result["caught"] == "ChildRunFailed"
    assert "'p--0' failed" in run.result["message"]
    assert "bad input" in run.result["message"]
    assert engine.status("p--0").status == "failed"
    [outcome] = outcomes_at(engine, "p", "0")
    assert isinstance(outcome, jf.EffectFailed)
    assert outcome.error.type == "ChildRunFailed"
    assert "ValueError" in outcome.error.traceback
    # Replayed (a fork of the whole run): the same exception, nothing re-run.
    before = lines(side)
    engine.fork("p", at=len(engine.events("p")) - 1, new_run_id="pf")
    assert engine.resume("pf", process=flows.catches).result == run.result
    assert lines(side) == before


def test_an_uncaught_child_failure_fails_the_parent(engine: Engine, side: Path) -> None:
    async def uncaught(inputs: object, ctx: object) -> None:
        await ctx.run_child(flows.failing, {"message": "nope"})  # type: ignore[attr-defined]

    run = engine.run(uncaught, {}, run_id="p")
    assert run.status == "failed"
    assert run.error is not None and "ChildRunFailed" in str(run.error)
    assert issubclass(ChildRunFailed, ReplayEngineError)


def test_a_waiting_child_makes_the_parent_wait_until_it_is_posted(
    engine: Engine, side: Path
) -> None:
    run = engine.run(flows.waits_on_child, {}, run_id="p")
    assert (run.status, run.pending) == ("waiting", ["0"])
    assert engine.status("p--0").status == "waiting"
    [pending] = engine.pending("p")
    assert (pending.key, pending.kind) == ("0", "child")  # names the child's effect
    assert pending.args["process"] == "tests.subruns.child_flows:waiting"
    with pytest.raises(PostRejected, match="child run"):
        engine.post("p", "0", result={"forged": True})
    engine.post("p--0", "0", result={"ok": 1})
    run = engine.resume("p")
    assert (run.status, run.result) == ("completed", {"child": {"reviewed": {"ok": 1}}})
    assert engine.status("p--0").status == "completed"
    assert len(outcomes_at(engine, "p", "0")) == 1
    assert engine.verify().ok


@pytest.mark.spec("JF-151")
def test_a_child_finished_on_its_own_journals_its_result_into_the_parent(
    engine: Engine, side: Path
) -> None:
    engine.run(flows.waits_on_child, {}, run_id="p")
    waiting_events = engine.status("p").events
    engine.post("p--0", "0", result={"ok": 2})
    assert engine.resume("p--0", process=flows.waiting).status == "completed"
    # The child's end is in the parent's journal: news for whoever wakes it.
    [outcome] = outcomes_at(engine, "p", "0")
    assert isinstance(outcome, jf.EffectCompleted)
    assert engine.status("p").events == waiting_events + 1
    run = engine.resume("p")
    assert run.result == {"child": {"reviewed": {"ok": 2}}}
    assert len(outcomes_at(engine, "p", "0")) == 1


def test_grandchildren(engine: Engine, side: Path) -> None:
    run = engine.run(flows.grand, {}, run_id="g")
    assert run.result == {"a": {"inner": {"name": "m1", "sum": 30}}}
    grandchild = engine.status("g--0--0")
    assert (grandchild.child_of, grandchild.child_key) == ("g--0", "0")
    assert engine.status("g--0").child_of == "g"
    assert sorted(lines(side)) == ["step m1 1", "step m1 2"]


def test_parallel_map_over_children(engine: Engine, side: Path) -> None:
    run = engine.run(flows.fan, {"n": 6, "limit": 3}, run_id="f")
    assert run.result == [{"name": f"f{i}", "sum": 20 * i + 10} for i in range(6)]
    kids = sorted(r.run_id for r in engine.runs() if r.child_of == "f")
    assert kids == [f"f--0.{i}.0" for i in range(6)]
    assert len(lines(side)) == 12
    again = engine.resume("f")
    assert again.result == run.result and len(lines(side)) == 12


def test_two_branches_await_one_child_by_its_run_id(engine: Engine, side: Path) -> None:
    run = engine.run(flows.named_twice, {"id": "shared"}, run_id="t")
    assert run.result == [{"name": "s", "sum": 110}, {"name": "s", "sum": 110}]
    assert sorted(lines(side)) == ["step s 5", "step s 6"]  # the child ran once
    assert engine.status("shared").child_of == "t"
    assert len(outcomes_at(engine, "t", "0.0.0")) == 1
    assert len(outcomes_at(engine, "t", "0.1.0")) == 1


def test_a_run_id_taken_by_a_plain_run_is_refused(engine: Engine, side: Path) -> None:
    engine.run(flows.leaf, {"name": "x", "n": 1}, run_id="plain")
    run = engine.run(flows.named, {"id": "plain"}, run_id="p")
    assert run.status == "failed"
    assert run.error is not None
    assert "run id 'plain' is taken by a run of its own" in str(run.error)
    # Nothing was recorded for the call.
    assert not [
        s for s in engine.events("p") if isinstance(s.event, jf.EffectRequested)
    ]


def test_a_run_id_under_another_parent_is_refused(engine: Engine, side: Path) -> None:
    engine.run(flows.named, {"id": "kid"}, run_id="p1")
    run = engine.run(flows.named, {"id": "kid"}, run_id="p2")
    assert run.status == "failed"
    assert run.error is not None and "a child of run 'p1'" in str(run.error)
    assert engine.status("kid").child_of == "p1"


def test_an_invalid_run_id_is_refused(engine: Engine, side: Path) -> None:
    run = engine.run(flows.named, {"id": "no spaces/here"}, run_id="p")
    assert run.status == "failed"
    assert run.error is not None and "invalid run id" in str(run.error)


def test_cancelling_the_parent_cancels_its_children(engine: Engine, side: Path) -> None:
    engine.run(flows.waits_on_child, {}, run_id="p")
    assert engine.status("p--0").status == "waiting"
    info = engine.cancel("p", reason="superseded")
    assert info.status == "cancelled"
    child = engine.status("p--0")
    assert child.status == "cancelled"
    assert child.cancel_reason is not None and "'p'" in child.cancel_reason
    with pytest.raises(PostRejected):
        engine.post("p--0", "0", result={"ok": 1})


def test_cancelling_a_child_fails_its_parent_s_call(engine: Engine, side: Path) -> None:
    engine.run(flows.waits_on_child, {}, run_id="p")
    engine.cancel("p--0")
    [outcome] = outcomes_at(engine, "p", "0")
    assert isinstance(outcome, jf.EffectFailed)
    assert (
        outcome.error.type == "ChildRunFailed" and "cancelled" in outcome.error.message
    )
    run = engine.resume("p")
    assert run.status == "failed"


def test_a_worker_wakes_the_posted_child_then_its_parent(
    engine: Engine, side: Path
) -> None:
    import threading
    import time

    engine.run(flows.waits_on_child, {}, run_id="p")
    engine.post("p--0", "0", result={"ok": 3})
    worker = engine.worker(processes=[flows.waits_on_child, flows.waiting])
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and engine.status("p").status != "completed":
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert engine.status("p--0").status == "completed"
    assert engine.status("p").status == "completed"
    assert engine.result("p") == {"child": {"reviewed": {"ok": 3}}}
    assert len(outcomes_at(engine, "p", "0")) == 1


@pytest.mark.spec("JF-153")
def test_default_child_run_ids_are_readable_and_stay_valid_when_long() -> None:
    from replay_engine._store.children import child_run_id

    assert child_run_id("r1", "3.1.0") == "r1--3.1.0"
    assert child_run_id("r1--3.1.0", "0") == "r1--3.1.0--0"
    parent = "p" * 125
    long_id = child_run_id(parent, "12.0.7")
    assert long_id == child_run_id(parent, "12.0.7")  # deterministic
    assert long_id != child_run_id(parent, "12.0.8")
    assert len(long_id) <= 128 and long_id.startswith("p" * 80 + "--")
    assert jf.check_run_id(long_id) == long_id


def test_a_fork_does_not_share_an_unfinished_child(engine: Engine, side: Path) -> None:
    engine.run(flows.waits_on_child, {}, run_id="p")
    # Up to and including the child's request: the child is unfinished there.
    events = engine.events("p")
    at = 1 + next(
        s.seq
        for s in events
        if isinstance(s.event, jf.EffectRequested) and s.event.kind == "child"
    )
    engine.fork("p", at=at, new_run_id="pf")
    run = engine.resume("pf", process=flows.waits_on_child)
    assert (run.status, run.pending) == ("waiting", ["0"])
    fresh = engine.status("pf--0")  # a child of its own, under the fork's id
    assert (fresh.child_of, fresh.status) == ("pf", "waiting")
    assert engine.status("p--0").child_of == "p"
    engine.post("pf--0", "0", result={"ok": "fork"})
    assert engine.resume("pf").result == {"child": {"reviewed": {"ok": "fork"}}}
    assert engine.status("p").status == "waiting"  # the original is untouched


@pytest.mark.spec("JF-151")
def test_a_child_outcome_is_journaled_into_its_parent_once(
    engine: Engine, side: Path
) -> None:
    from replay_engine._store.children import deliver, outcome_of

    engine.run(flows.waits_on_child, {}, run_id="p")
    key = jf.encode_key(jf.parse_key("0"))
    store = engine._store
    assert outcome_of(store, "p--0", key) is None  # the child has not ended
    # No child request at another key: nothing is written.
    other = jf.EffectCompleted(key=jf.encode_key(jf.parse_key("7")), result=b"\xc0")
    assert deliver(store, "p", other.key, other) is None
    engine.post("p--0", "0", result={"ok": 4})
    engine.resume("p--0", process=flows.waiting)  # ends the child: delivered
    first = outcome_of(store, "p--0", key)
    assert isinstance(first, jf.EffectCompleted)
    count = engine.status("p").events
    forged = jf.EffectFailed(key=key, error=jf.ErrorInfo(type="X", message="late"))
    # A second writer (a racing resume) reads the first outcome, writes nothing.
    assert deliver(store, "p", key, forged) == first
    assert engine.status("p").events == count
    assert len(outcomes_at(engine, "p", "0")) == 1
    # An ended parent takes nothing.
    engine.cancel("p")
    count = engine.status("p").events
    assert deliver(store, "p", key, forged) is None
    assert engine.status("p").events == count
