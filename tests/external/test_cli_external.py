"""``pending``, ``post``, ``iterate`` and ``runs --status waiting`` on the CLI.

Driven in-process with click's CliRunner (the subprocess path is covered by
the end-to-end and crash tests).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

import journal_format as jf
from replay_engine import Engine
from tests.journal_views import snapshot

Invoke = Callable[..., Result]
InvokeJson = Callable[..., Any]

FLOWS = "tests.external.ext_flows"
EFFECT_FIELDS = {
    "key",
    "task",
    "kind",
    "args",
    "requested_at",
    "seq",
    "deadline",
    "claimed_by",
    "lease_expires",
    "stale",
    "abandoned",
}


def start(invoke_json: InvokeJson, flow: str, run_id: str, inputs: Any = None) -> Any:
    args = ["run", f"{FLOWS}:{flow}", "--run-id", run_id]
    if inputs is not None:
        args += ["--input", json.dumps(inputs)]
    return invoke_json(*args, code=3)


def error_of(result: Result) -> dict[str, Any]:
    doc = json.loads(result.stdout)
    assert set(doc) == {"error"}
    assert result.stderr.startswith("error: ")
    return doc["error"]  # type: ignore[no-any-return]


# -- pending -------------------------------------------------------------------


def test_pending_lists_effects_with_every_field(invoke_json: InvokeJson) -> None:
    start(invoke_json, "pipeline", "p", {"feature": "f"})
    doc = invoke_json("pending", "p")
    assert doc["run_id"] == "p" and doc["status"] == "waiting"
    assert doc["signals"] == []
    assert [p["key"] for p in doc["pending"]] == ["1.0.0", "1.1.0", "1.2.0"]
    for p in doc["pending"]:
        assert set(p) == EFFECT_FIELDS
        assert p["task"] == "ext.implement" and p["kind"] == "agent"
        assert _dt.datetime.fromisoformat(p["requested_at"]).tzinfo is not None
        assert p["claimed_by"] is None and not p["stale"] and not p["abandoned"]
    assert [p["args"] for p in doc["pending"]] == [
        {"part": "api"},
        {"part": "ui"},
        {"part": "docs"},
    ]


def test_pending_human_output(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "pipeline", "p", {"feature": "f"})
    invoke_json("pending", "p", "--claim", "w1", "--lease", "60")
    out = invoke("pending", "p", code=0).stdout
    for text in ("1.0.0", "1.2.0", "ext.implement", "w1", "leased", '"part": "ui"'):
        assert text in out, out
    out = invoke("pending", "p", "--claim", "w2", "--lease", "60", code=0).stdout
    assert "claimed for w2" in out and "1.1.0" in out


def test_pending_lists_signal_waits_apart(
    invoke: Invoke, invoke_json: InvokeJson
) -> None:
    start(invoke_json, "signals", "s", {})
    doc = invoke_json("pending", "s")
    assert doc["pending"] == []
    [wait] = doc["signals"]
    assert wait["key"] == "1" and wait["name"] == "go" and wait["deadline"] is None
    assert "--event go" in invoke("pending", "s", code=0).stdout


def test_pending_claim(invoke_json: InvokeJson) -> None:
    start(invoke_json, "fan", "r", {"n": 3})
    doc = invoke_json("pending", "r", "--claim", "w1", "--lease", "30", "--max", "2")
    assert doc["run_id"] == "r" and doc["worker"] == "w1" and doc["lease"] == 30
    assert [c["key"] for c in doc["claimed"]] == ["0.0.0", "0.1.0"]
    assert all(c["claimed_by"] == "w1" for c in doc["claimed"])
    lease = _dt.datetime.fromisoformat(doc["claimed"][0]["lease_expires"])
    left = (lease - _dt.datetime.now(_dt.UTC)).total_seconds()
    assert 20 < left <= 30
    doc = invoke_json("pending", "r", "--claim", "w2", "--lease", "30", "--max", "5")
    assert [c["key"] for c in doc["claimed"]] == ["0.2.0"]
    assert (
        invoke_json("pending", "r", "--claim", "w3", "--lease", "30")["claimed"] == []
    )
    owners = {p["key"]: p["claimed_by"] for p in invoke_json("pending", "r")["pending"]}
    assert owners == {"0.0.0": "w1", "0.1.0": "w1", "0.2.0": "w2"}


def test_pending_claim_by_kind(invoke_json: InvokeJson) -> None:
    invoke_json("run", f"{FLOWS}:mixed_kinds", "--run-id", "k", code=3)
    doc = invoke_json(
        "pending", "k", "--claim", "ann", "--lease", "9", "--kind", "breakpoint"
    )
    assert [(c["key"], c["kind"]) for c in doc["claimed"]] == [("0.2.0", "breakpoint")]


@pytest.mark.parametrize(
    "args",
    [
        ["--lease", "10"],
        ["--max", "3"],
        ["--kind", "agent"],
        ["--claim", "w"],
        ["--claim", "w", "--lease", "0"],
        ["--claim", "w", "--lease", "-1"],
        ["--claim", "w", "--lease", "5", "--max", "0"],
    ],
)
def test_pending_usage_errors(
    invoke: Invoke, invoke_json: InvokeJson, args: list[str]
) -> None:
    start(invoke_json, "fan", "r", {"n": 1})
    result = invoke("pending", "r", *args, "--json", code=2)
    assert error_of(result)["type"] == "UsageError"


def test_pending_of_unknown_run(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "fan", "r", {"n": 1})
    error = error_of(invoke("pending", "nope", "--json", code=2))
    assert error["type"] == "RunNotFoundError"


# -- post ----------------------------------------------------------------------


def test_post_result_and_error(
    invoke: Invoke, invoke_json: InvokeJson, open_engine: Callable[[], Engine]
) -> None:
    start(invoke_json, "fan", "r", {"n": 3})
    doc = invoke_json("post", "r", "0.0.0", "--result", '{"v": [1, 2]}', "--by", "a")
    assert doc == {
        "run_id": "r",
        "key": "0.0.0",
        "posted": "result",
        "seq": doc["seq"],
        "by": "a",
    }
    assert isinstance(doc["seq"], int)
    doc = invoke_json("post", "r", "0.1.0", "--result", "-", stdin='"from stdin"')
    assert doc["posted"] == "result" and doc["by"] is None
    out = invoke("post", "r", "0.2.0", "--error", "no can do", code=0).stdout
    assert "posted an error to key 0.2.0" in out and "iterate r" in out
    engine = open_engine()
    outcomes = [
        s.event
        for s in engine.events("r")
        if isinstance(s.event, jf.EffectCompleted | jf.EffectFailed)
    ]
    assert len(outcomes) == 3
    results = [
        engine.payload(e.result) for e in outcomes if isinstance(e, jf.EffectCompleted)
    ]
    assert results == [{"v": [1, 2]}, "from stdin"]


def test_post_refusals_exit_1_with_reason_and_write_nothing(
    invoke: Invoke, invoke_json: InvokeJson, open_engine: Callable[[], Engine]
) -> None:
    start(invoke_json, "one_external", "r")
    invoke_json("post", "r", "1", "--result", "1")
    engine = open_engine()
    before = snapshot(engine, "r")
    cases = {
        ("1", "--result", "2"): "already_completed",
        ("9", "--result", "2"): "unknown_key",
        ("0", "--result", "2"): "not_external",
    }
    for args, reason in cases.items():
        error = error_of(invoke("post", "r", *args, "--json", code=1))
        assert error["type"] == "PostRejected" and error["reason"] == reason
        assert error["run_id"] == "r" and error["key"] == args[0]
        assert error["exit_code"] == 1
    assert snapshot(engine, "r") == before
    # Without --json: the message on stderr, nothing on stdout.
    result = invoke("post", "r", "1", "--result", "3", code=1)
    assert result.stdout == "" and "already has a result" in result.stderr


def test_post_to_a_finished_run(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "one_external", "r")
    invoke_json("post", "r", "1", "--result", "1")
    invoke("iterate", "r", code=0)
    for args in (["1", "--result", "2"], ["--event", "go"]):
        error = error_of(invoke("post", "r", *args, "--json", code=1))
        assert error["reason"] == "run_finished"
        assert "completed" in error["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["0.0.0", "--result", "{not json"],
        ["0.0.0", "--result", "'single'"],
        ["0.0.0", "--approve", "--response", "{bad"],
        ["--event", "go", "--payload", "nope"],
        ["0.0.0"],  # no action
        ["0.0.0", "--result", "1", "--error", "x"],  # two actions
        ["0.0.0", "--approve", "--reject"],
        ["--result", "1"],  # no key
        ["0.0.0", "--event", "go"],  # a key with --event
        ["0.0.0", "--heartbeat", "--by", "w"],  # no --lease
        ["0.0.0", "--heartbeat", "--lease", "5"],  # no --by
        ["0.0.0", "--result", "1", "--lease", "5"],
        ["0.0.0", "--result", "1", "--response", "1"],
        ["0.0.0", "--result", "1", "--payload", "1"],
        ["x.y", "--result", "1"],  # not a key
        ["0.0.0", "--result", "18446744073709551616000"],  # not encodable
    ],
)
def test_post_usage_errors_exit_2(
    invoke: Invoke,
    invoke_json: InvokeJson,
    open_engine: Callable[[], Engine],
    args: list[str],
) -> None:
    start(invoke_json, "fan", "r", {"n": 1})
    before = snapshot(open_engine(), "r")
    error = error_of(invoke("post", "r", *args, "--json", code=2))
    assert error["type"] in ("UsageError", "PayloadError")
    assert snapshot(open_engine(), "r") == before


def test_post_approve_and_reject(invoke_json: InvokeJson) -> None:
    start(invoke_json, "approval", "yes", {})
    start(invoke_json, "approval", "no", {})
    invoke_json("post", "yes", "0", "--approve", "--response", '{"note": "lgtm"}')
    invoke_json("post", "no", "0", "--reject", "--by", "carol")
    yes = invoke_json("iterate", "yes", code=0)
    no = invoke_json("iterate", "no", code=0)
    assert yes["result"] == {"deployed": True, "response": {"note": "lgtm"}}
    assert no["result"] == {"deployed": False, "response": None}


def test_post_raw_breakpoint_result_must_have_approved(
    invoke: Invoke, invoke_json: InvokeJson
) -> None:
    start(invoke_json, "approval", "b", {})
    error = error_of(invoke("post", "b", "0", "--result", '"yes"', "--json", code=1))
    assert error["reason"] == "invalid_result"
    invoke_json("post", "b", "0", "--result", '{"approved": true, "response": 1}')


def test_post_event(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "signals", "s", {})
    doc = invoke_json("post", "s", "--event", "go", "--payload", '{"n": 1}')
    assert doc["run_id"] == "s" and doc["event"] == "go" and isinstance(doc["seq"], int)
    it = invoke_json("iterate", "s", code=3)
    assert [w["key"] for w in it["signals"]] == ["2"] and it["pending"] == []
    assert "sent event 'go'" in invoke("post", "s", "--event", "go", code=0).stdout
    assert invoke_json("iterate", "s", code=0)["result"] == [{"n": 1}, None]


def test_post_heartbeat(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "fan", "r", {"n": 1})
    invoke_json("pending", "r", "--claim", "w1", "--lease", "0.2")
    time.sleep(0.3)
    assert invoke_json("pending", "r")["pending"][0]["stale"] is True
    doc = invoke_json(
        "post", "r", "0.0.0", "--heartbeat", "--by", "w1", "--lease", "60"
    )
    assert doc["key"] == "0.0.0" and doc["worker"] == "w1"
    lease = _dt.datetime.fromisoformat(doc["lease_expires"])
    assert (lease - _dt.datetime.now(_dt.UTC)).total_seconds() > 50
    assert invoke_json("pending", "r")["pending"][0]["stale"] is False
    error = error_of(
        invoke(
            "post",
            "r",
            "0.0.0",
            "--heartbeat",
            "--by",
            "w2",
            "--lease",
            "5",
            "--json",
            code=1,
        )
    )
    assert error["reason"] == "not_claimed"
    error = error_of(
        invoke("post", "r", "0.0.0", "--result", "1", "--by", "w2", "--json", code=1)
    )
    assert error["reason"] == "claimed"
    invoke_json("post", "r", "0.0.0", "--result", "1", "--by", "w1")


# -- iterate -------------------------------------------------------------------


def test_iterate_waiting_document(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "pipeline", "p", {"feature": "f"})
    result = invoke("iterate", "p", code=3)  # JSON without --json
    doc = json.loads(result.stdout)
    assert set(doc) >= {"run_id", "status", "result", "pending", "next_due", "stats"}
    assert doc["run_id"] == "p" and doc["status"] == "waiting" and doc["result"] is None
    assert [p["key"] for p in doc["pending"]] == ["1.0.0", "1.1.0", "1.2.0"]
    assert all(set(p) == EFFECT_FIELDS for p in doc["pending"])
    assert doc["next_due"] is None and doc["error"] is None
    assert doc["stats"]["replayed"] == 1 and doc["stats"]["dispatched"] == 0
    assert doc["already_completed"] is False and doc["note"] is None
    with_flag = json.loads(invoke("iterate", "p", "--json", code=3).stdout)
    assert set(with_flag) == set(doc) and with_flag["pending"] == doc["pending"]


def test_iterate_completed_is_terminal(
    invoke: Invoke, invoke_json: InvokeJson, open_engine: Callable[[], Engine]
) -> None:
    start(invoke_json, "one_external", "r")
    invoke_json("post", "r", "1", "--result", '"x"')
    done = invoke_json("iterate", "r", code=0)
    assert done["status"] == "completed" and done["result"] == {"prep": "x", "out": "x"}
    assert done["already_completed"] is False
    events = invoke_json("status", "r")["events"]
    before = snapshot(open_engine(), "r")
    for _ in range(2):
        result = invoke("iterate", "r", code=0)
        again = json.loads(result.stdout)
        assert again["status"] == "completed" and again["result"] == done["result"]
        assert again["already_completed"] is True
        assert "already completed" in again["note"] and "note:" in result.stderr
        assert again["stats"]["events_written"] == 0
    assert invoke_json("status", "r")["events"] == events
    assert snapshot(open_engine(), "r") == before


def test_iterate_failed_exits_1_and_lists_abandoned(
    invoke: Invoke, invoke_json: InvokeJson
) -> None:
    invoke_json(
        "run", f"{FLOWS}:fail_fast", "--input", '{"n": 3}', "--run-id", "ff", code=1
    )
    doc = json.loads(invoke("iterate", "ff", code=1).stdout)
    assert doc["status"] == "failed" and doc["pending"] == []
    assert "branch 0 failed" in doc["error"]["message"]
    assert [a["key"] for a in doc["abandoned"]] == ["0.1.0", "0.2.0"]
    assert all(a["abandoned"] for a in doc["abandoned"])


def test_iterate_errors_are_json(invoke: Invoke, invoke_json: InvokeJson) -> None:
    start(invoke_json, "one_external", "r")
    result = invoke("iterate", "nope", code=2)
    assert error_of(result)["type"] == "RunNotFoundError"


def test_iterate_reports_timers_and_deadlines(invoke_json: InvokeJson) -> None:
    start(invoke_json, "timers", "t", {"seconds": 0.5})
    invoke_json("post", "t", "1", "--result", "1")
    doc = invoke_json("iterate", "t", code=3)
    assert doc["pending"] == [] and doc["next_due"] is not None
    assert 0 <= doc["next_due_in"] <= 0.5
    rows = invoke_json("runs", "--status", "waiting")
    assert rows[0]["next_due"] == doc["next_due"] and rows[0]["pending_count"] == 0
    due = _dt.datetime.fromisoformat(doc["next_due"])
    time.sleep(max(0.0, (due - _dt.datetime.now(_dt.UTC)).total_seconds()) + 0.05)
    assert invoke_json("iterate", "t", code=0)["result"] == "after"


# -- runs --status waiting -----------------------------------------------------


def test_runs_waiting_reports_what_each_run_needs(
    invoke: Invoke, invoke_json: InvokeJson
) -> None:
    start(invoke_json, "fan", "a", {"n": 3})
    start(invoke_json, "approval", "b", {"timeout": 3600})
    start(invoke_json, "signals", "s", {})
    start(invoke_json, "one_external", "done")
    invoke_json("post", "done", "1", "--result", "1")
    invoke("iterate", "done", code=0)
    invoke_json("pending", "a", "--claim", "w1", "--lease", "0.1", "--max", "2")
    invoke_json("post", "a", "0.2.0", "--result", "5")
    time.sleep(0.2)
    rows = {r["run_id"]: r for r in invoke_json("runs", "--status", "waiting")}
    assert set(rows) == {"a", "b", "s"}
    a, b, s = rows["a"], rows["b"], rows["s"]
    assert a["pending"] == ["0.0.0", "0.1.0"] and a["pending_count"] == 2
    assert a["expired_leases"] == 2 and a["next_due"] is None
    assert a["oldest_pending_age"] >= 0.2
    assert b["pending_count"] == 1 and b["expired_leases"] == 0
    assert b["next_due"] is not None
    due = _dt.datetime.fromisoformat(b["next_due"]) - _dt.datetime.now(_dt.UTC)
    assert 3500 < due.total_seconds() <= 3600
    assert s["pending_count"] == 0 and s["signals"] == ["go"]
    everything = {r["run_id"]: r for r in invoke_json("runs")}
    assert everything["done"]["pending_count"] == 0
    assert everything["done"]["oldest_pending_age"] is None
    table = invoke("runs", "--status", "waiting", code=0).stdout
    for text in ("pending", "oldest", "leases expired", "next due", "+1 events"):
        assert text in table, table
