"""Regression tests for engine gaps found while building the external-effects CLI.

A malformed key must be a ReplayEngineError (PostRejected), and a waiting run's
pending keys must survive the claims, posts and signals that follow its
``run_waiting`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from replay_engine import Engine, ReplayEngineError

from . import ext_flows as f


def test_malformed_key_is_a_replay_engine_error(engine: Engine) -> None:
    engine.run(f.one_external, None, run_id="r")
    with pytest.raises(ReplayEngineError):
        engine.post("r", "not-a-key", result=1)


def test_status_pending_survives_claims_and_posts(engine: Engine) -> None:
    engine.run(f.fan, {"n": 3}, run_id="a")
    assert engine.status("a").pending == ("0.0.0", "0.1.0", "0.2.0")
    engine.claim("a", "w", lease=60)
    assert engine.status("a").pending == ("0.0.0", "0.1.0", "0.2.0")
    engine.post("a", "0.0.0", result=1)
    assert engine.status("a").pending == ("0.1.0", "0.2.0")


def test_cli_status_pending_survives_posts(
    engine: Engine, invoke_json: Callable[..., Any]
) -> None:
    engine.run(f.fan, {"n": 6}, run_id="a")
    for i in range(4):
        engine.post("a", f"0.{i}.0", result=i)
    assert invoke_json("status", "a")["pending"] == ["0.4.0", "0.5.0"]


def test_iterate_that_changes_nothing_commits_nothing(engine: Engine) -> None:
    engine.run(f.fan, {"n": 3}, run_id="a")
    events = len(engine.events("a"))
    before = engine._store.commits  # the engine's own store: its commit count
    assert engine.iterate("a").status == "waiting"
    assert len(engine.events("a")) == events
    assert engine._store.commits == before
