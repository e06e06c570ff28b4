"""``Engine.replay``: the state after every prefix, and nothing dispatched.

The recorded run (``tt_flows:process``) has parallel branches (keys 1.j.0 and
4.j.0), a retried attempt (1.1.0), a failure the process catches (2), a
recorded value (3) and a log line.
"""

from __future__ import annotations

import pytest

import journal_format as jf
from replay_engine import Engine, LogEntry
from replay_engine.errors import ReplayRangeError

from .conftest import (
    Recorded,
    expected_done,
    expected_failed,
    expected_in_flight,
    key_of,
)


def test_the_recorded_run_has_the_features_under_test(recorded: Recorded) -> None:
    events = recorded.events()
    tags = [jf.event_tag(s.event) for s in events]
    assert {"attempt_failed", "failed", "value", "log"} <= set(tags)
    keys = {key_of(s) for s in events}
    assert {"1.0.0", "1.1.0", "4.0.0", "4.1.0", "4.2.0"} <= keys
    assert recorded.result == {
        "first": 2,
        "pair": [20, 103],
        "caught": "boom",
        "outs": [2, 4, 6],
    }


def test_replay_at_every_prefix_matches_the_journal_and_dispatches_nothing(
    recorded: Recorded,
) -> None:
    engine, run_id = recorded.engine, recorded.run_id
    events = recorded.events()
    side_before = recorded.side_lines()
    head_before = [s.digest for s in events]
    assert len(events) >= 15

    for until in range(len(events) + 1):
        snap = engine.replay(run_id, until=until)
        assert snap.until == until and snap.events == len(events)
        effects = [c for c in snap.calls if c.kind != "value"]
        done = {c.key for c in effects if c.status == "done"}
        assert done == expected_done(events, until), f"until={until}"
        failed = {c.key for c in effects if c.status == "failed"}
        assert failed == expected_failed(events, until), f"until={until}"
        in_flight = {c.key for c in effects if c.status == "in flight"}
        assert in_flight == expected_in_flight(events, until), f"until={until}"
        logs = [e.seq for e in snap.logs]
        assert logs == [s.seq for s in events[:until] if jf.event_tag(s.event) == "log"]
        # The process finishes only once the prefix holds everything it needs.
        completes = until >= next(
            s.seq for s in events if jf.event_tag(s.event) == "log"
        )
        assert (snap.process_status == "completed") == completes, f"until={until}"
        if completes:
            assert snap.result == recorded.result
        else:
            assert snap.process_status == "frontier" and snap.frontier

    assert recorded.side_lines() == side_before, "a replay dispatched a task"
    assert [s.digest for s in engine.events(run_id)] == head_before
    assert engine.verify(run_id).ok


def test_the_frontier_names_the_calls_and_their_source_lines(
    recorded: Recorded,
) -> None:
    events = recorded.events()
    # Just after the flaky task's failed attempt: 1.1.0 is in flight; 1.0.0 ran
    # concurrently, so whether it is done by then depends on the recorded order.
    attempt = next(s.seq for s in events if jf.event_tag(s.event) == "attempt_failed")
    first_done = any(
        jf.event_tag(s.event) == "completed" and key_of(s) == "1.0.0"
        for s in events[: attempt + 1]
    )
    snap = recorded.engine.replay(recorded.run_id, until=attempt + 1)
    flaky = next(c for c in snap.calls if c.key == "1.1.0")
    assert (flaky.status, flaky.attempts_failed, flaky.args["x"]) == ("in flight", 1, 3)
    expected = [] if first_done else [("1.0.0", "tt.double", "in flight")]
    assert [(f.key, f.task, f.reason) for f in snap.frontier] == [
        *expected,
        ("1.1.0", "tt.flaky", "in flight"),
    ]
    path, line = snap.frontier[-1].site.rsplit(":", 1)
    assert path.endswith("tt_flows.py") and int(line) > 0
    assert snap.to_dict()["frontier"][0]["site"] == snap.frontier[0].site


def test_until_a_key_stops_where_that_call_is_first_recorded(
    recorded: Recorded,
) -> None:
    events = recorded.events()
    first = min(s.seq for s in events if key_of(s) == "4.1.0")
    snap = recorded.engine.replay(recorded.run_id, until="key:4.1.0")
    assert snap.until == first
    assert next(c for c in snap.calls if c.key == "4.1.0").status == "not reached"


@pytest.mark.parametrize("until", [-1, 10_000, "key:9.9"])
def test_until_out_of_range_is_a_value_error(recorded: Recorded, until: object) -> None:
    with pytest.raises(ValueError):
        recorded.engine.replay(recorded.run_id, until=until)  # type: ignore[arg-type]


def test_replay_of_an_unchanged_journal_is_repeatable(recorded: Recorded) -> None:
    engine: Engine = recorded.engine
    first = engine.replay(recorded.run_id, until=9).to_dict()
    assert engine.replay(recorded.run_id, until=9).to_dict() == first


def test_replay_calls_streams_what_replay_holds_at_every_prefix(
    recorded: Recorded,
) -> None:
    """``replay_calls`` yields the snapshot's calls and log lines, nothing else.

    Journal order (each call once its state at ``until`` is known), so sorted
    by key they are ``replay(...).calls``; ``calls=False`` leaves those out
    and keeps the frontier and outcome.
    """
    engine, run_id = recorded.engine, recorded.run_id
    events = recorded.events()
    for until in range(len(events) + 1):
        snap = engine.replay(run_id, until=until)
        items = list(engine.replay_calls(run_id, until))
        calls = [i for i in items if not isinstance(i, LogEntry)]
        assert sorted(calls, key=lambda c: jf.parse_key(c.key)) == snap.calls
        assert [i for i in items if isinstance(i, LogEntry)] == snap.logs
        # A call is yielded no earlier than its state is settled: its outcome,
        # or the snapshot point for one still open.
        seqs = [
            i.seq if isinstance(i, LogEntry) else (i.finished_seq or i.requested_seq)
            for i in items
            if isinstance(i, LogEntry) or i.status != "in flight"
        ]
        assert seqs == sorted(seqs), f"until={until}"
        bare = engine.replay(run_id, until=until, calls=False)
        assert bare.calls == [] and bare.logs == []
        assert (bare.frontier, bare.process_status, bare.result) == (
            snap.frontier,
            snap.process_status,
            snap.result,
        )
    with pytest.raises(ReplayRangeError):
        engine.replay_calls(run_id, len(events) + 1)
