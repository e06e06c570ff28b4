"""Work claiming: atomic hand-out, leases, heartbeats, stale re-offers, the log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from replay_engine import Engine, PostRejected
from tests.journal_views import snapshot

from . import ext_flows as f


def by_key(engine: Engine, run_id: str) -> dict[str, Any]:
    return {p.key: p for p in engine.pending(run_id)}


def test_claims_hand_out_each_effect_once(engine: Engine) -> None:
    engine.run(f.fan, {"n": 5}, run_id="r")
    first = engine.claim("r", "w1", lease=60, limit=2)
    second = engine.claim("r", "w2", lease=60, limit=None)
    third = engine.claim("r", "w3", lease=60, limit=5)
    assert [p.key for p in first] == ["0.0.0", "0.1.0"]
    assert [p.key for p in second] == ["0.2.0", "0.3.0", "0.4.0"]
    assert third == []
    assert all(p.claimed_by == "w1" and not p.stale for p in first)
    assert all(p.lease_expires is not None for p in first + second)
    owners = {k: p.claimed_by for k, p in by_key(engine, "r").items()}
    assert owners == {
        "0.0.0": "w1",
        "0.1.0": "w1",
        "0.2.0": "w2",
        "0.3.0": "w2",
        "0.4.0": "w2",
    }
    # Claimed effects keep their args for the worker.
    assert [p.args for p in second] == [{"i": 2}, {"i": 3}, {"i": 4}]


def test_claim_by_kind(engine: Engine) -> None:
    engine.run(f.mixed_kinds, None, run_id="k")
    kinds = {p.key: p.kind for p in engine.pending("k")}
    assert kinds == {"0.0.0": "agent", "0.1.0": "review", "0.2.0": "breakpoint"}
    [bp] = engine.claim("k", "alice", lease=60, kind="breakpoint")
    assert bp.key == "0.2.0" and bp.args == {"title": "merge?", "payload": {"pr": 7}}
    assert engine.claim("k", "bob", lease=60, kind="breakpoint") == []
    [rv] = engine.claim("k", "bob", lease=60, kind="review", limit=5)
    assert rv.key == "0.1.0"


def test_expired_lease_is_stale_and_offered_again(engine: Engine) -> None:
    engine.run(f.fan, {"n": 2}, run_id="r")
    [mine] = engine.claim("r", "w1", lease=0.3)
    assert mine.key == "0.0.0"
    time.sleep(0.5)
    stale = by_key(engine, "r")["0.0.0"]
    assert stale.stale and stale.claimed_by == "w1"
    # The stale effect is handed out again (before the unclaimed 0.1.0).
    [again] = engine.claim("r", "w2", lease=60)
    assert again.key == "0.0.0" and again.claimed_by == "w2" and not again.stale
    # The old holder lost it: its heartbeat and its post are refused...
    before = snapshot(engine, "r")
    try:
        engine.heartbeat("r", "0.0.0", "w1", lease=60)
    except PostRejected as exc:
        assert exc.reason == "not_claimed"
    else:
        raise AssertionError("the old holder's heartbeat was accepted")
    try:
        engine.post("r", "0.0.0", result="late", by="w1")
    except PostRejected as exc:
        assert exc.reason == "claimed" and "w2" in str(exc)
    else:
        raise AssertionError("the old holder's post was accepted")
    assert snapshot(engine, "r") == before
    # ...and the new holder's post wins.
    engine.post("r", "0.0.0", result="done", by="w2")


def test_a_stale_post_by_the_old_holder_is_accepted_if_nobody_reclaimed(
    engine: Engine,
) -> None:
    """Expiry re-offers the work; it does not throw away a late result."""
    engine.run(f.fan, {"n": 1}, run_id="r")
    engine.claim("r", "w1", lease=0.2)
    time.sleep(0.4)
    assert by_key(engine, "r")["0.0.0"].stale
    engine.post("r", "0.0.0", result=7, by="w1")
    assert engine.iterate("r").result == {"sum": 7, "outs": [7]}


def test_heartbeat_extends_the_lease(engine: Engine) -> None:
    engine.run(f.fan, {"n": 1}, run_id="r")
    [claimed] = engine.claim("r", "w1", lease=0.3)
    until = engine.heartbeat("r", "0.0.0", "w1", lease=60)
    assert claimed.lease_expires is not None and until > claimed.lease_expires
    time.sleep(0.5)  # past the first lease, well within the extended one
    held = by_key(engine, "r")["0.0.0"]
    assert not held.stale and held.claimed_by == "w1"
    assert held.lease_expires == until
    assert engine.claim("r", "w2", lease=60) == []


def test_heartbeat_after_expiry_renews_if_nobody_took_it(engine: Engine) -> None:
    engine.run(f.fan, {"n": 1}, run_id="r")
    engine.claim("r", "w1", lease=0.2)
    time.sleep(0.4)
    assert by_key(engine, "r")["0.0.0"].stale
    engine.heartbeat("r", "0.0.0", "w1", lease=60)
    assert not by_key(engine, "r")["0.0.0"].stale


def test_claims_survive_iterate_and_log_shows_who_did_what(
    engine: Engine, invoke_json: Callable[..., Any]
) -> None:
    engine.run(f.fan, {"n": 3}, run_id="r")
    engine.claim("r", "alice", lease=60, limit=2)
    engine.claim("r", "bob", lease=60)
    engine.heartbeat("r", "0.0.0", "alice", lease=120)
    assert engine.iterate("r").status == "waiting"
    assert by_key(engine, "r")["0.2.0"].claimed_by == "bob"  # replay kept it
    engine.post("r", "0.0.0", result=1, by="alice")
    engine.post("r", "0.1.0", error="cannot", by="alice")
    engine.post("r", "0.2.0", result=3, by="bob")
    claims = invoke_json("log", "r", "--type", "claimed")
    assert [(c["key"], c["fields"]["worker"]) for c in claims] == [
        ("0.0.0", "alice"),
        ("0.1.0", "alice"),
        ("0.2.0", "bob"),
        ("0.0.0", "alice"),  # the heartbeat
    ]
    assert all(c["task"] == "ext.work" for c in claims)
    assert all(isinstance(c["fields"]["lease_until_ns"], int) for c in claims)
    posts = invoke_json("log", "r", "--type", "completed", "--type", "failed")
    assert {(p["key"], p["fields"]["by"]) for p in posts} == {
        ("0.0.0", "alice"),
        ("0.1.0", "alice"),
        ("0.2.0", "bob"),
    }
    text = json.dumps(claims)
    assert "alice" in text and "bob" in text
