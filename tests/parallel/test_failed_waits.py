"""Failing a wait: an error posted to an event wait, or an error signal (issue 15).

The error raises ``TaskFailed`` at the ``await`` in the process, live and on
replay, with the same exactly-once rules as a posted result: the first outcome
of a wait wins, and a signal a failed wait did not take is left for the next.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine import Engine, PostRejected
from replay_engine._store.outcomes import bind_signal
from replay_engine._store.store import Store
from tests import helpers

from .par_flows import wait_once, wait_twice


def _failed(message: str, key: str = "0") -> dict[str, str]:
    return {"failed": "ExternalError", "message": message, "key": key}


@pytest.mark.spec("JF-142")
def test_error_posted_to_an_event_wait_raises_at_the_await(engine: Engine) -> None:
    assert engine.run(wait_once, None, run_id="w").status == "waiting"
    seq = engine.post("w", "0", error="CI crashed")
    events = engine.events("w")
    posted = events[seq].event
    assert isinstance(posted, jf.EffectFailed) and posted.key == jf.encode_key((0,))
    run = engine.resume("w")
    assert run.status == "completed"
    assert run.result == _failed("CI crashed")
    # Replayed (a fork of the whole history re-executes against the journal).
    engine.fork("w", at=len(engine.events("w")) - 1, new_run_id="w2")
    again = engine.resume("w2")
    assert again.result == _failed("CI crashed")
    assert again.stats.dispatched == 0


def test_a_result_to_an_event_wait_key_is_still_refused(engine: Engine) -> None:
    engine.run(wait_once, None, run_id="w")
    with pytest.raises(PostRejected) as info:
        engine.post("w", "0", result={"x": 1})
    assert info.value.reason == "not_external"
    assert "--event" in str(info.value)


def test_the_first_outcome_of_a_wait_wins(engine: Engine) -> None:
    engine.run(wait_once, None, run_id="w")
    engine.post("w", "0", error="first")
    with pytest.raises(PostRejected) as info:
        engine.post("w", "0", error="second")
    assert info.value.reason == "already_completed"
    # A signal sent now is left alone by the failed wait.
    engine.post_event("w", "go", {"late": True})
    assert engine.resume("w").result == _failed("first")


@pytest.mark.spec("JF-141")
def test_error_signal_fails_the_wait_that_takes_it(engine: Engine) -> None:
    engine.run(wait_twice, None, run_id="w")
    engine.post_event("w", "go", error="build broke")
    engine.post_event("w", "go", {"n": 2})
    run = engine.resume("w")
    assert run.status == "completed"
    assert run.result == [
        {"failed": "ExternalError", "message": "build broke"},
        {"ok": {"n": 2}},
    ]
    failed = [
        e.event for e in engine.events("w") if isinstance(e.event, jf.EffectFailed)
    ]
    assert len(failed) == 1 and failed[0].signal_seq is not None
    # Replay agrees: resuming a fork of the whole history dispatches nothing.
    engine.fork("w", at=len(engine.events("w")) - 1, new_run_id="w2")
    assert engine.resume("w2").result == run.result


def test_error_to_a_wait_key_leaves_the_signal_for_the_next_wait(
    engine: Engine,
) -> None:
    engine.run(wait_twice, None, run_id="w")
    engine.post("w", "0", error="skip this one")
    engine.post_event("w", "go", "payload")
    assert engine.resume("w").result == [
        {"failed": "ExternalError", "message": "skip this one"},
        {"ok": "payload"},
    ]


def test_post_event_with_both_payload_and_error_is_refused(engine: Engine) -> None:
    engine.run(wait_once, None, run_id="w")
    with pytest.raises(ValueError, match="payload or an error"):
        engine.post_event("w", "go", {"x": 1}, error="no")


@pytest.mark.spec("JF-142")
def test_binding_a_signal_yields_to_an_error_posted_meanwhile(
    engine: Engine, journal: Path
) -> None:
    """The executor binds a signal in a transaction that re-reads the wait's key.

    An execution that loaded the signal, then finds an error posted to the wait
    since, takes the error: the wait never gets two outcomes.
    """
    engine.run(wait_once, None, run_id="w")
    signal_seq = engine.post_event("w", "go", "p")
    engine.post("w", "0", error="raced")
    store = Store(str(journal))
    try:
        outcome = bind_signal(store, "w", jf.encode_key((0,)), signal_seq)
    finally:
        store.close()
    assert isinstance(outcome, jf.EffectFailed) and outcome.error.message == "raced"
    outcomes = [
        e
        for e in engine.events("w")
        if isinstance(e.event, jf.EffectCompleted | jf.EffectFailed)
    ]
    assert len(outcomes) == 1


def test_cli_posts_errors_to_waits(engine: Engine, journal: Path) -> None:
    invoke = helpers.cli_invoker(journal)
    engine.run(wait_twice, None, run_id="w")
    doc = json.loads(
        invoke("post", "w", "--event", "go", "--error", "red", "--json", code=0).stdout
    )
    assert doc["event"] == "go" and doc["error"] == "red"
    assert engine.resume("w").status == "waiting"  # now at key 1
    doc = json.loads(
        invoke("post", "w", "1", "--error", "gone", "--json", code=0).stdout
    )
    assert doc["posted"] == "error"
    invoke("post", "w", "--event", "go", "--error", "x", "--payload", "1", code=2)
    assert engine.resume("w").result == [
        {"failed": "ExternalError", "message": "red"},
        {"failed": "ExternalError", "message": "gone"},
    ]
