"""``replay``, ``fork``, ``export``, ``timeline`` and ``debug`` through CliRunner.

Every ``--json`` document is checked against the engine API on the same journal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine._cli.common import plain

from .conftest import Invoke, Recorded, call_keys, expected_done, key_of

InvokeJson = Callable[..., Any]


def _same_json(value: Any) -> Any:
    return json.loads(json.dumps(plain(value)))


# -- replay ------------------------------------------------------------------------


@pytest.mark.parametrize("until", ["0", "1", "7", "12", None, "key:4.1.0"])
def test_replay_json_is_the_snapshot(
    recorded: Recorded, invoke_json: InvokeJson, until: str | None
) -> None:
    side = recorded.side_lines()
    args = ["--until", until] if until is not None else []
    doc = invoke_json("replay", "r1", *args)
    engine_until: int | str | None = until
    if until is not None and not until.startswith("key:"):
        engine_until = int(until)
    snap = recorded.engine.replay("r1", until=engine_until)
    assert doc == _same_json(snap.to_dict())
    done = {c["key"] for c in doc["calls"] if c["status"] == "done"}
    done -= {c["key"] for c in doc["calls"] if c["kind"] == "value"}
    assert done == expected_done(recorded.events(), doc["until"])
    assert recorded.side_lines() == side


def test_replay_human_output_shows_tree_logs_frontier_and_result(
    recorded: Recorded, invoke: Invoke
) -> None:
    events = recorded.events()
    attempt = next(s.seq for s in events if jf.event_tag(s.event) == "attempt_failed")
    out = invoke("replay", "r1", "--until", str(attempt + 1), code=0).stdout
    assert f"after {attempt + 1} of {len(events)} events" in out
    # 1.0.0 and 1.1.0 run concurrently: whether 1.0.0 had completed by then
    # depends on the recorded order, so read it from the journal.
    done_seq = next(
        s.seq
        for s in events
        if jf.event_tag(s.event) == "completed"
        and jf.key_bytes_to_text(s.event.key) == "1.0.0"  # type: ignore[union-attr]
    )
    first_done = done_seq < attempt + 1
    status = "done" if first_done else "in flight"
    assert re.search(rf"1\.0\.0\s+tt\.double\s+{status}", out)
    assert re.search(r"1\.1\.0\s+tt\.flaky\s+in flight\s+1 failed attempt", out)
    assert re.search(r"4\.2\.0\s+tt\.double\s+not reached", out)
    assert "frontier" in out and "tt_flows.py:" in out
    frontier = 1 if first_done else 2
    assert f"process stopped at {frontier} frontier call" in out

    full = invoke("replay", "r1", code=0).stdout
    assert re.search(r"2\s+tt\.explode\s+failed.*ValueError: boom", full)
    assert "mapped items=3" in full
    assert 'result: {"first":2' in full


def test_replay_with_another_process(recorded: Recorded, invoke: Invoke) -> None:
    invoke("replay", "r1", "--process", "tt_flows:process", code=0)
    # process_v2 disagrees with the journal at key 4.0.0: a divergence exits 1.
    diverged = invoke("replay", "r1", "--process", "tt_flows:process_v2", code=1)
    assert diverged.stderr.startswith("error: ")
    assert "4.0.0" in diverged.stderr


# -- fork --------------------------------------------------------------------------


def test_fork_json_and_resume(recorded: Recorded, invoke_json: InvokeJson) -> None:
    doc = invoke_json("fork", "r1", "--at", "9", "--run-id", "r1-9")
    fork = (doc["run_id"], doc["parent"], doc["fork_at"], doc["events"])
    assert fork == ("r1-9", "r1", 9, 9)
    info = recorded.engine.status("r1-9")
    assert (info.parent, info.fork_at, info.status) == ("r1", 9, doc["status"])
    resumed = invoke_json("resume", "r1-9")
    assert resumed["status"] == "completed"
    assert resumed["result"] == recorded.result


def test_fork_human_output_and_default_id(recorded: Recorded, invoke: Invoke) -> None:
    out = invoke("fork", "r1", "--at", "3", code=0).stdout
    match = re.search(r"forked r1 at event 3 → (r1-fork-[0-9a-f]{4})", out)
    assert match, out
    assert recorded.engine.status(match.group(1)).fork_at == 3
    assert f"replay-engine resume {match.group(1)}" in out


# -- export ------------------------------------------------------------------------


def test_export_jsonl_inlines_payloads(recorded: Recorded, invoke: Invoke) -> None:
    lines = invoke("export", "r1", "--format", "jsonl", code=0).stdout.splitlines()
    events = recorded.events()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [s.seq for s in events]
    for record, stored in zip(records, events, strict=True):
        assert record["digest"] == stored.digest.hex()
        assert record["prev"] == stored.envelope.prev.hex()
        assert record["type"] == jf.event_tag(stored.event)
        assert record["key"] == key_of(stored)
        assert {"at", "v"} <= record.keys()
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            assert record["task"] == event.task
            assert record["args"] == _same_json(recorded.engine.payload(event.args))
        if isinstance(event, jf.EffectCompleted):
            assert record["result"] == _same_json(recorded.engine.payload(event.result))
        if isinstance(event, jf.EffectFailed):
            assert record["error"]["type"] == "ValueError"
    assert records[0]["inputs"] == {"side": str(recorded.side)}
    assert records[-1]["type"] == "run_completed"
    assert records[-1]["result"] == recorded.result


def test_export_without_payloads_to_a_file(
    recorded: Recorded, invoke_json: InvokeJson, tmp_path: Path
) -> None:
    out = tmp_path / "r1.jsonl"
    doc = invoke_json("export", "r1", "--no-payloads", "-o", str(out))
    events = recorded.events()
    assert doc["events"] == len(events) and doc["payloads"] is False
    records = [json.loads(line) for line in out.read_text().splitlines()]
    requested = [
        (r, s.event)
        for r, s in zip(records, events, strict=True)
        if isinstance(s.event, jf.EffectRequested)
    ]
    assert requested
    for record, event in requested:
        assert record["args"] == event.args.hex()


def test_export_json_without_output_is_one_array(
    recorded: Recorded, invoke_json: InvokeJson
) -> None:
    doc = invoke_json("export", "r1")
    assert isinstance(doc, list) and len(doc) == len(recorded.events())


# -- timeline ----------------------------------------------------------------------


def test_timeline_has_one_row_per_call_key(
    recorded: Recorded, invoke_json: InvokeJson, tmp_path: Path
) -> None:
    page = tmp_path / "run.html"
    doc = invoke_json("timeline", "r1", "-o", str(page))
    keys = call_keys(recorded.events())
    assert doc["keys"] == keys and doc["rows"] == len(keys)
    html = page.read_text(encoding="utf-8")
    assert re.findall(r'class="tl-row[^"]*" data-key="([^"]+)"', html) == keys
    # Self-contained: no external resources.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script src" not in html and "<link" not in html
    # The failed effect is red, the retried one has an attempt tick.
    assert re.search(r'class="tl-row failed" data-key="2"', html)
    assert re.search(r'data-key="1.1.0"[^>]*>.*?class="attempt"', html, re.S)


def test_timeline_of_a_fork_marks_the_fork_and_replayed_calls(
    recorded: Recorded, invoke_json: InvokeJson, tmp_path: Path
) -> None:
    at = min(s.seq for s in recorded.events() if key_of(s) == "4.0.0")
    invoke_json("fork", "r1", "--at", str(at), "--run-id", "r1b")
    invoke_json("resume", "r1b")
    page = tmp_path / "fork.html"
    doc = invoke_json("timeline", "r1b", "-o", str(page))
    assert doc["executions"] == 2
    html = page.read_text(encoding="utf-8")
    assert f"fork at {at}" in html
    rows = re.findall(r'class="tl-row (\w+)" data-key="([^"]+)"', html)
    by_key = {key: shade for shade, key in rows}
    assert by_key["0"] == "replayed" and by_key["4.0.0"] == "dispatched"


# -- debug -------------------------------------------------------------------------


def test_debug_json_session(recorded: Recorded, invoke: Invoke) -> None:
    commands = "n\nn\np\ng 7\nk 4.1.0\ns 1.1.0\ns 9\nbogus\nq\n"
    doc = json.loads(invoke("debug", "r1", "--json", input=commands, code=0).stdout)
    steps = doc["steps"]
    seqs = [s["step"]["seq"] for s in steps if "step" in s]
    first_41 = min(s.seq for s in recorded.events() if key_of(s) == "4.1.0")
    assert seqs == [0, 1, 2, 1, 7, first_41]
    for step in (s["step"] for s in steps if "step" in s):
        snap = recorded.engine.replay("r1", until=step["seq"] + 1)
        assert step["until"] == step["seq"] + 1
        assert step["counts"]["done"] == sum(c.status == "done" for c in snap.calls)
        assert step["frontier"] == [f.key for f in snap.frontier]
    call = next(s["call"] for s in steps if "call" in s)
    assert (call["key"], call["status"], call["args"]["x"], call["result"]) == (
        "1.1.0",
        "done",
        3,
        103,
    )
    errors = [s["error"] for s in steps if "error" in s]
    assert errors[0].startswith("no call at key 9")
    assert errors[1].startswith("unknown command 'bogus'")


def test_debug_human_session(recorded: Recorded, invoke: Invoke) -> None:
    out = invoke("debug", "r1", input="n\ng 9\ns 2\nt\nq\n", code=0).stdout
    assert "debugging run r1" in out
    assert "[seq 0/" in out and "[seq 1/" in out and "[seq 9/" in out
    assert re.search(r"\[seq 9/\d+\] failed\s+key 2\s+tt\.explode", out)
    assert "ValueError" in out
    assert out.count("debug> ") == 5


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("replay", "r1x"),
        ("fork", "r1x", "--at", "2"),
        ("export", "r1x"),
        ("timeline", "r1x", "-o", "x.html"),
        ("debug", "r1x"),
    ],
)
def test_an_unknown_run_exits_2_with_close_matches(
    recorded: Recorded, invoke: Invoke, command: tuple[str, ...]
) -> None:
    result = invoke(*command, code=2)
    assert result.stderr.startswith("error: no run 'r1x'")
    assert "Closest matches: r1" in result.stderr
    doc = json.loads(invoke(*command, "--json", code=2).stdout)
    assert doc["error"]["type"] == "RunNotFoundError"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("replay", "r1", "--until", "999"), "outside 0..19"),
        (("replay", "r1", "--until", "-1"), "negative"),
        (("replay", "r1", "--until", "soon"), "neither an event count"),
        (("replay", "r1", "--until", "key:9.9"), "no call at key 9.9"),
        (("replay", "r1", "--until", "key:x"), "key:x"),
        (("fork", "r1", "--at", "999"), "outside 1..19"),
        (("fork", "r1", "--at", "0"), "--at"),
        (("fork", "r1", "--at", "3", "--run-id", "r1"), "already exists"),
        (("export", "r1", "--format", "csv"), "csv"),
        (("replay", "r1", "--process", "no_such_module:f"), "no_such_module"),
    ],
)
def test_usage_errors_exit_2(
    recorded: Recorded, invoke: Invoke, args: tuple[str, ...], message: str
) -> None:
    assert len(recorded.events()) == 19
    result = invoke(*args, code=2)
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_process_that_cannot_be_imported_exits_2(
    invoke: Invoke, tmp_path: Path, flows_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "gone_flow.py"
    module.write_text(
        "async def process(inputs, ctx):\n    return inputs\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    invoke("run", "gone_flow:process", "--run-id", "g1", "--input", "1", code=0)
    module.unlink()
    monkeypatch.delitem(__import__("sys").modules, "gone_flow")
    for command in (("replay", "g1"), ("debug", "g1")):
        result = invoke(*command, code=2)
        assert "gone_flow" in result.stderr
    # export and timeline need no process.
    invoke("export", "g1", code=0)


def test_a_damaged_journal_exits_1(
    recorded: Recorded, invoke: Invoke, journal: Path
) -> None:
    recorded.engine.close()
    path = journal / "data.mdb"
    data = bytearray(path.read_bytes())
    marker, count = b"tt.explode", 0
    at = data.find(marker)
    while at != -1:
        data[at + len(marker) - 1] ^= 0x20
        count += 1
        at = data.find(marker, at + len(marker))
    assert count
    path.write_bytes(bytes(data))
    for command in (
        ("replay", "r1"),
        ("export", "r1"),
        ("timeline", "r1", "-o", str(journal.parent / "t.html")),
        ("debug", "r1"),
    ):
        result = invoke(*command, "--json", code=1)
        assert json.loads(result.stdout)["error"]["type"] == "JournalCorruptError"
