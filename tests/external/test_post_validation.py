"""Posting is validated and atomic: every refusal says why and writes nothing.

Each refused post is checked against a snapshot of the run taken before it:
event count, head digest, status, every event digest and the number of blobs
in the journal are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import (
    Engine,
    PayloadError,
    PostRejected,
    ReplayEngineError,
    RunNotFoundError,
)
from tests.journal_views import snapshot

from . import ext_flows as f


def refused(engine: Engine, run_id: str, reason: str, call: object) -> PostRejected:
    """Run ``call()``; it must raise PostRejected(reason) and change nothing."""
    before = snapshot(engine, run_id)
    with pytest.raises(PostRejected) as info:
        call()  # type: ignore[operator]
    assert info.value.reason == reason, info.value
    assert info.value.run_id == run_id
    assert str(info.value)  # a sentence, not an empty message
    assert snapshot(engine, run_id) == before
    return info.value


def test_unknown_key_is_refused(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    exc = refused(engine, "r", "unknown_key", lambda: engine.post("r", "7", result=1))
    assert exc.key == "7"
    assert "pending r" in str(exc)  # says how to list what it waits for
    refused(engine, "r", "unknown_key", lambda: engine.post("r", "1.0.0", result=1))


def test_in_process_task_and_signal_keys_are_not_postable(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    refused(engine, "r", "not_external", lambda: engine.post("r", "0", result=1))
    engine.run(f.signals, {}, run_id="s")
    exc = refused(engine, "s", "not_external", lambda: engine.post("s", "1", result=1))
    assert "--event" in str(exc)


def test_second_post_of_a_key_is_refused_first_result_kept(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    engine.post("r", "1", result="first", by="agent-a")
    exc = refused(
        engine,
        "r",
        "already_completed",
        lambda: engine.post("r", "1", result="second", by="agent-b"),
    )
    assert "agent-a" in str(exc)
    refused(engine, "r", "already_completed", lambda: engine.post("r", "1", error="x"))
    run = engine.iterate("r")
    assert run.status == "completed"
    assert run.result == {"prep": "x", "out": "first"}


def test_posted_error_is_a_task_failure(engine: Engine) -> None:
    engine.run(f.fan, {"n": 1}, run_id="r")
    engine.post("r", "0.0.0", error="agent gave up", by="a")
    run = engine.iterate("r")
    assert run.status == "failed"
    assert run.error is not None
    assert "ExternalError: agent gave up" in run.error.message


def test_unencodable_payload_is_refused_and_writes_nothing(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    before = snapshot(engine, "r")
    with pytest.raises(PayloadError):
        engine.post("r", "1", result=object())
    with pytest.raises(PayloadError):
        engine.post("r", "1", result={"too big": 2**70})
    with pytest.raises(PayloadError):
        engine.post_event("r", "go", payload={1, 2, object()})
    assert snapshot(engine, "r") == before
    assert isinstance(PayloadError("x"), ReplayEngineError | TypeError)


def test_result_xor_error(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    before = snapshot(engine, "r")
    with pytest.raises(ValueError, match="exactly one"):
        engine.post("r", "1")
    with pytest.raises(ValueError, match="exactly one"):
        engine.post("r", "1", result=1, error="x")
    assert snapshot(engine, "r") == before


def test_completed_run_refuses_everything(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    engine.post("r", "1", result=5)
    assert engine.iterate("r").status == "completed"
    before = snapshot(engine, "r")
    for call in (
        lambda: engine.post("r", "1", result=6),
        lambda: engine.post("r", "7", result=6),
        lambda: engine.post_event("r", "go", 1),
        lambda: engine.claim("r", "w", lease=10),
        lambda: engine.heartbeat("r", "1", "w", lease=10),
    ):
        exc = refused(engine, "r", "run_finished", call)
        assert "completed" in str(exc) and "fork" in str(exc)
    # Iterating (or resuming) a completed run changes nothing either.
    for _ in range(3):
        run = engine.iterate("r")
        assert run.status == "completed"
        assert run.result == {"prep": "x", "out": 5}
        assert run.stats.dispatched == 0 and run.stats.events_written == 0
    assert snapshot(engine, "r") == before
    assert [jf.event_tag(s.event) for s in engine.events("r")].count(
        "run_completed"
    ) == 1


def test_failed_run_refuses_posts(engine: Engine) -> None:
    engine.run(f.fan, {"n": 2}, run_id="r")
    engine.post("r", "0.0.0", error="no")
    assert engine.iterate("r").status == "failed"
    refused(engine, "r", "run_finished", lambda: engine.post("r", "0.1.0", result=1))
    refused(engine, "r", "run_finished", lambda: engine.post_event("r", "go"))


def test_breakpoint_needs_an_approval_shape(engine: Engine) -> None:
    engine.run(f.approval, {}, run_id="b")
    for bad in ({"ok": True}, True, {"approved": "yes"}, None):
        exc = refused(
            engine,
            "b",
            "invalid_result",
            lambda bad=bad: engine.post("b", "0", result=bad),
        )
        assert "--approve" in str(exc)


def test_claimed_effect_refuses_other_workers(engine: Engine) -> None:
    engine.run(f.fan, {"n": 2}, run_id="r")
    [claimed] = engine.claim("r", "w1", lease=60)
    exc = refused(
        engine, "r", "claimed", lambda: engine.post("r", claimed.key, result=1, by="w2")
    )
    assert "w1" in str(exc)
    refused(
        engine,
        "r",
        "not_claimed",
        lambda: engine.heartbeat("r", claimed.key, "w2", lease=60),
    )
    refused(
        engine,
        "r",
        "not_claimed",
        lambda: engine.heartbeat("r", "0.1.0", "w1", lease=5),
    )
    engine.post("r", claimed.key, result=1, by="w1")  # the holder may post


def test_unknown_run(engine: Engine, journal: Path) -> None:
    engine.run(f.one_external, None, run_id="r")
    with pytest.raises(RunNotFoundError):
        engine.post("nope", "1", result=1)
    with pytest.raises(RunNotFoundError):
        engine.pending("nope")
    with pytest.raises(RunNotFoundError):
        engine.post_event("nope", "go")
