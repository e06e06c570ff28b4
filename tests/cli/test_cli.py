"""The ``replay-engine`` command line, driven in-process with click's CliRunner.

Each command's JSON document is parsed and checked against what the Python API
says about the same journal.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine
from replay_engine._cli import cli

from .conftest import Invoke

SIMPLE_INPUT = '{"a": 2, "b": 3}'
FANOUT_KEYS = {"0", "1.0.0", "1.1.0", "2.0.0", "2.1.0", "2.2.0"}


def run_simple(invoke_json: Callable[..., Any], run_id: str, **inputs: Any) -> Any:
    payload = json.dumps({"a": 2, "b": 3, **inputs})
    return invoke_json(
        "run", "cli_flows:simple", "--input", payload, "--run-id", run_id
    )


# -- the group -----------------------------------------------------------------


def test_help_lists_commands_in_declaration_order(invoke: Invoke) -> None:
    out = invoke("--help", code=0).stdout
    lines = out.split("Commands:")[1].strip().splitlines()
    listed = [line.split()[0] for line in lines]
    assert listed == [
        *("run", "resume", "submit", "worker", "status", "runs", "log", "verify"),
        *("replay", "fork", "export", "timeline", "debug", "diff", "compat"),
        *("pending", "post", "iterate"),
        *("delete", "gc", "compact"),
        "check",
        "cancel",
        "serve",
        "stats",
    ]
    assert "REPLAY_ENGINE_JOURNAL" in out


def test_every_command_takes_json() -> None:
    ctx = cli.make_context("replay-engine", ["--help"], resilient_parsing=True)
    names = cli.list_commands(ctx)
    assert len(names) >= 23
    for name in names:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert any("--json" in p.opts for p in command.params), name


def test_journal_defaults_to_the_environment_variable(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from .conftest import FLOWS_DIR

    monkeypatch.syspath_prepend(str(FLOWS_DIR))
    runner = CliRunner(env={"REPLAY_ENGINE_JOURNAL": str(journal)})
    args = ["run", "cli_flows:simple", "--input", SIMPLE_INPUT, "--run-id", "env1"]
    assert runner.invoke(cli, args).exit_code == 0
    with Engine(str(journal)) as engine:
        assert engine.status("env1").status == "completed"


# -- run -------------------------------------------------------------------------


def test_run_completed_json_agrees_with_the_engine(
    invoke_json: Callable[..., Any], open_engine: Callable[[], Engine]
) -> None:
    doc = run_simple(invoke_json, "r1")
    assert doc["run_id"] == "r1"
    assert doc["status"] == "completed"
    assert doc["result"] == {"sum": 5, "double": 10}
    assert doc["process"] == "cli_flows:simple"
    assert doc["error"] is None and doc["pending"] == []
    stats = doc["stats"]
    assert stats["dispatched"] == 2 and stats["replayed"] == 0
    assert stats["commits"] >= 1 and stats["elapsed"] >= 0

    engine = open_engine()
    info = engine.status("r1")
    assert info.status == "completed"
    assert engine.result("r1") == doc["result"]
    # run_started is written when the run is created; the call wrote the rest.
    assert info.events == stats["events_written"] + 1


def test_run_human_output(invoke: Invoke) -> None:
    out = invoke("run", "cli_flows:simple", "--input", SIMPLE_INPUT, code=0).stdout
    assert "completed" in out
    assert '{"double": 10, "sum": 5}' in out
    assert "dispatched 2" in out and "events written" in out


def test_run_generates_a_run_id(invoke_json: Callable[..., Any]) -> None:
    doc = invoke_json("run", "cli_flows:simple", "--input", SIMPLE_INPUT)
    assert doc["run_id"].startswith("run-")
    assert invoke_json("status", doc["run_id"])["status"] == "completed"


def test_run_reads_input_from_a_file(
    invoke_json: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "in.json"
    path.write_text('{"a": 20, "b": 1}')
    doc = invoke_json("run", "cli_flows:simple", "--input-file", str(path))
    assert doc["result"] == {"sum": 21, "double": 42}


def test_failed_run_exits_1_with_the_error(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    doc = invoke_json(
        "run", "cli_flows:failing", "--input", '{"reason": "kaput"}', code=1
    )
    assert doc["status"] == "failed"
    assert "ValueError" in doc["error"]["message"]
    assert "kaput" in doc["error"]["message"]
    assert doc["error"]["traceback"]

    human = invoke("run", "cli_flows:failing", code=1)
    assert "failed" in human.stdout and "boom" in human.stdout


def test_waiting_run_exits_3_with_pending_keys(
    invoke: Invoke, invoke_json: Callable[..., Any], open_engine: Callable[[], Engine]
) -> None:
    doc = invoke_json("run", "cli_flows:waits", "--run-id", "w1", code=3)
    assert doc["status"] == "waiting"
    assert doc["pending"] == ["1"]  # key 0 is a task, key 1 the external review
    assert open_engine().status("w1").status == "waiting"

    human = invoke("run", "cli_flows:waits", "--run-id", "w2", code=3)
    assert "waiting" in human.stdout and "keys: 1" in human.stdout


def test_run_prints_log_lines(invoke: Invoke, invoke_json: Callable[..., Any]) -> None:
    human = invoke("run", "cli_flows:fanout", code=0)
    assert "fanned out" in human.stdout and "items=3" in human.stdout
    doc = invoke_json("run", "cli_flows:fanout")
    assert doc["logs"] == [
        {"key": "3", "message": "fanned out", "fields": {"items": 3}}
    ]
    assert doc["result"] == {"first": 2, "pair": [20, 3], "outs": [2, 4, 6]}


# -- resume ----------------------------------------------------------------------


def test_resume_of_a_completed_run_executes_nothing(
    invoke_json: Callable[..., Any], tmp_path: Path
) -> None:
    counter = tmp_path / "executions.txt"
    first = run_simple(invoke_json, "c1", counter=str(counter))
    assert counter.read_text().splitlines() == ["add"]

    again = invoke_json("resume", "c1")
    assert again["status"] == "completed"
    assert again["result"] == first["result"]
    assert again["stats"]["dispatched"] == 0
    assert counter.read_text().splitlines() == ["add"]


def test_resume_of_a_failed_run_replays_and_fails_again(
    invoke_json: Callable[..., Any],
) -> None:
    invoke_json("run", "cli_flows:failing", "--run-id", "f1", code=1)
    doc = invoke_json("resume", "f1", code=1)
    assert doc["status"] == "failed"
    assert "boom" in doc["error"]["message"]
    # Both calls (the success at 0 and the failure at 1) come from the journal.
    assert doc["stats"]["replayed"] == 2 and doc["stats"]["dispatched"] == 0


def test_resume_of_a_waiting_run_still_waits(invoke_json: Callable[..., Any]) -> None:
    invoke_json("run", "cli_flows:waits", "--run-id", "w1", code=3)
    doc = invoke_json("resume", "w1", code=3)
    assert doc["pending"] == ["1"]
    assert doc["stats"]["replayed"] >= 1 and doc["stats"]["dispatched"] == 0


def test_divergence_exits_1_with_the_full_message(
    invoke: Invoke, invoke_json: Callable[..., Any], tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    inputs = json.dumps({"flag": str(flag)})
    invoke_json(
        "run", "cli_flows:diverges", "--input", inputs, "--run-id", "d1", code=3
    )
    flag.touch()
    result = invoke("resume", "d1", code=1)
    assert result.stderr.startswith("error: ")
    assert "d1" in result.stderr
    assert len(result.stderr.strip().splitlines()) > 1  # the whole explanation

    doc = json.loads(invoke("resume", "d1", "--json", code=1).stdout)
    assert doc["error"]["type"] == "NonDeterminismError"
    assert doc["error"]["run_id"] == "d1" and doc["error"]["key"] == "0"


def test_a_locked_run_exits_1(invoke: Invoke, journal: Path) -> None:
    from replay_engine._store.lock import RunLock

    invoke("run", "cli_flows:waits", "--run-id", "w1", code=3)
    lock = RunLock(str(journal), "w1")  # another executor holds the run
    try:
        result = invoke("resume", "w1", "--json", code=1)
    finally:
        lock.release()
    assert json.loads(result.stdout)["error"]["type"] == "RunLockedError"
    assert result.stderr.startswith("error: run 'w1' is being executed by pid")


# -- status and runs -------------------------------------------------------------


def test_status_json_agrees_with_the_engine(
    invoke_json: Callable[..., Any], open_engine: Callable[[], Engine]
) -> None:
    run_simple(invoke_json, "s1")
    doc = invoke_json("status", "s1")
    required = {"run_id", "status", "result", "events", "dispatched", "replayed"}
    assert required <= doc.keys()
    info = open_engine().status("s1")
    assert doc["run_id"] == "s1" and doc["status"] == info.status == "completed"
    assert doc["result"] == {"sum": 5, "double": 10}
    assert (doc["events"], doc["dispatched"], doc["replayed"]) == (
        info.events,
        info.dispatched,
        info.replayed,
    )
    assert doc["process"] == "cli_flows:simple"
    assert doc["created"] == info.created.isoformat()
    assert doc["parent"] is None and doc["fork_at"] is None


def test_status_of_failed_and_waiting_runs(invoke_json: Callable[..., Any]) -> None:
    invoke_json("run", "cli_flows:failing", "--run-id", "f1", code=1)
    invoke_json("run", "cli_flows:waits", "--run-id", "w1", code=3)
    failed = invoke_json("status", "f1")  # status reports; it does not fail
    assert failed["status"] == "failed" and failed["result"] is None
    assert "boom" in failed["error"]["message"]
    assert invoke_json("status", "w1")["pending"] == ["1"]


def test_status_human_output(invoke: Invoke, invoke_json: Callable[..., Any]) -> None:
    run_simple(invoke_json, "s1")
    out = invoke("status", "s1", code=0).stdout
    assert "completed" in out and "cli_flows:simple" in out


def test_runs_lists_and_filters(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    run_simple(invoke_json, "s1")
    invoke_json("run", "cli_flows:failing", "--run-id", "f1", code=1)
    invoke_json("run", "cli_flows:waits", "--run-id", "w1", code=3)

    rows = invoke_json("runs")
    assert [r["run_id"] for r in rows] == ["w1", "f1", "s1"]  # newest first
    by_id = {r["run_id"]: r for r in rows}
    assert by_id["s1"]["status"] == "completed"
    assert by_id["f1"]["process"] == "cli_flows:failing"
    assert {"run_id", "status", "process", "events", "created", "updated"} <= set(
        by_id["w1"]
    )
    assert [r["run_id"] for r in invoke_json("runs", "--status", "failed")] == ["f1"]
    assert invoke_json("runs", "--status", "running") == []

    table = invoke("runs", code=0).stdout
    assert all(run_id in table for run_id in ("s1", "f1", "w1"))
    invoke("runs", "--status", "bogus", code=2)


# -- log -------------------------------------------------------------------------


@pytest.fixture
def fanout_log(invoke_json: Callable[..., Any]) -> list[dict[str, Any]]:
    invoke_json("run", "cli_flows:fanout", "--run-id", "p1")
    events: list[dict[str, Any]] = invoke_json("log", "p1")
    return events


def test_log_lists_the_events_with_their_keys(
    fanout_log: list[dict[str, Any]], open_engine: Callable[[], Engine]
) -> None:
    types = [e["type"] for e in fanout_log]
    assert types[0] == "run_started" and types[-1] == "run_completed"
    assert {"requested", "completed", "log"} <= set(types)

    requested = [e for e in fanout_log if e["type"] == "requested"]
    assert {e["key"] for e in requested} == FANOUT_KEYS
    tasks = {e["key"]: e["task"] for e in requested}
    assert tasks["1.1.0"] == "cli_flows.add_marker_task"
    assert tasks["2.2.0"] == "cli_flows.double"
    for event in fanout_log:  # completions name the task of their request
        if event["type"] == "completed":
            assert event["task"] == tasks[event["key"]]
    assert fanout_log[0]["key"] is None and fanout_log[0]["task"] is None

    stored = open_engine().events("p1")
    assert [e["seq"] for e in fanout_log] == [s.seq for s in stored]
    assert [e["digest"] for e in fanout_log] == [s.digest.hex() for s in stored]
    for before, after in itertools.pairwise(fanout_log):
        assert after["prev"] == before["digest"]


def test_log_json_carries_the_event_fields(fanout_log: list[dict[str, Any]]) -> None:
    started = fanout_log[0]["fields"]
    assert started["process"] == "cli_flows:fanout"
    # Payload references in hex: a payload shorter than an address is inline
    # (here the run had no inputs: msgpack nil), a longer one is its address.
    assert jf.decode_payload(bytes.fromhex(started["inputs"])) is None
    request = next(e for e in fanout_log if e["type"] == "requested")
    assert request["fields"]["kind"] == "task"
    assert jf.decode_payload(bytes.fromhex(request["fields"]["args"])) == {"x": 1}
    log = next(e for e in fanout_log if e["type"] == "log")
    assert log["fields"]["message"] == "fanned out"
    assert log["fields"]["fields"] == {"items": 3}


def test_log_filters(invoke_json: Callable[..., Any], fanout_log: Any) -> None:
    only = invoke_json("log", "p1", "--type", "requested", "--type", "log")
    assert {e["type"] for e in only} == {"requested", "log"}
    assert len(only) == len(FANOUT_KEYS) + 1

    branch = invoke_json("log", "p1", "--key-prefix", "2")
    assert {e["key"] for e in branch} == {"2.0.0", "2.1.0", "2.2.0"}
    one = invoke_json("log", "p1", "--key-prefix", "2.1")
    assert [(e["type"], e["key"]) for e in one] == [
        ("requested", "2.1.0"),
        ("completed", "2.1.0"),
    ]

    adds = invoke_json("log", "p1", "--task", "cli_flows.add_marker_task")
    assert [(e["type"], e["key"]) for e in adds] == [
        ("requested", "1.1.0"),
        ("completed", "1.1.0"),
    ]
    globbed = invoke_json("log", "p1", "--task", "cli_flows.d*", "--type", "completed")
    assert {e["key"] for e in globbed} == FANOUT_KEYS - {"1.1.0"}

    window = invoke_json("log", "p1", "--from", "3", "--to", "5")
    assert [e["seq"] for e in window] == [3, 4, 5]
    assert window == fanout_log[3:6]
    # A completion in the window still names its task, requested before it.
    late = invoke_json("log", "p1", "--from", "5", "--task", "cli_flows.*")
    assert late and all(e["seq"] >= 5 and e["task"] for e in late)


def test_log_human_output_shortens_digests(
    invoke: Invoke, fanout_log: list[dict[str, Any]]
) -> None:
    out = invoke("log", "p1", code=0).stdout
    digest = fanout_log[1]["digest"]
    assert digest[:12] in out and digest not in out
    assert "1.1.0" in out and "cli_flows.add_marker_task" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--key-prefix", "3.x"],
        ["--type", "no_such_type"],
        ["--from", "5", "--to", "2"],
        ["--from", "-1"],
    ],
)
def test_log_rejects_bad_filters(
    invoke: Invoke, fanout_log: Any, args: list[str]
) -> None:
    result = invoke("log", "p1", *args, code=2)
    assert result.stderr.startswith("error: ")


# -- verify ----------------------------------------------------------------------


def damage(journal: Path, marker: bytes) -> int:
    """Change one byte inside every stored copy of ``marker``; how many there were.

    LMDB copies pages on write, so stale copies of a record can sit in free
    pages; damaging each copy makes sure the live one is hit.
    """
    path = journal / "data.mdb"
    data = bytearray(path.read_bytes())
    count, at = 0, data.find(marker)
    while at != -1:
        data[at + len(marker) - 1] ^= 0x20  # 'k' -> 'K'
        count += 1
        at = data.find(marker, at + len(marker))
    path.write_bytes(bytes(data))
    return count


def test_verify_an_intact_journal(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    run_simple(invoke_json, "s1")
    invoke_json("run", "cli_flows:failing", "--run-id", "f1", code=1)
    doc = invoke_json("verify")
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["runs"] == 2 and doc["events"] == 12
    assert invoke_json("verify", "s1")["runs"] == 1
    assert "intact" in invoke("verify", code=0).stdout


def test_verify_a_damaged_journal_names_run_and_seq(
    invoke: Invoke, invoke_json: Callable[..., Any], journal: Path
) -> None:
    run_simple(invoke_json, "s1")  # seq 1 requests cli_flows.add_marker_task
    invoke_json("run", "cli_flows:failing", "--run-id", "f1", code=1)
    assert damage(journal, b"cli_flows.add_marker_task") >= 1

    doc = invoke_json("verify", code=1)
    assert doc["ok"] is False
    assert {(p["run_id"], p["seq"]) for p in doc["problems"]} == {("s1", 1)}
    assert invoke_json("verify", "f1")["ok"] is True

    human = invoke("verify", "s1", code=1)
    assert "s1" in human.stdout and "damaged" in human.stdout
    assert human.stderr.startswith("error: run 's1' is damaged")

    # Reading the damaged record is refused too.
    broken = invoke("log", "s1", "--json", code=1)
    assert json.loads(broken.stdout)["error"]["type"] == "JournalCorruptError"


# -- errors ----------------------------------------------------------------------


def test_unknown_run_exits_2_with_close_matches(
    invoke: Invoke, invoke_json: Callable[..., Any]
) -> None:
    run_simple(invoke_json, "nightly-build")
    for command in ("status", "resume", "log", "verify"):
        result = invoke(command, "nightly-buidl", code=2)
        assert result.stderr.startswith("error: no run 'nightly-buidl'")
        assert "Closest matches: nightly-build" in result.stderr
        assert result.stdout == ""

    result = invoke("status", "nightly-buidl", "--json", code=2)
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "RunNotFoundError" and error["exit_code"] == 2
    assert error["run_id"] == "nightly-buidl"
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "ref",
    ["no_such_module_xyz:process", "cli_flows:no_such_function", "not-a-reference"],
)
def test_unimportable_process_exits_2(invoke: Invoke, ref: str) -> None:
    result = invoke("run", ref, "--json", code=2)
    assert json.loads(result.stdout)["error"]["type"] == "ProcessImportError"
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{not json"], "--input is not valid JSON"),
        (["--input", "{}", "--input-file", "x.json"], "not both"),
        (["--input-file", "/no/such/file.json"], "cannot read"),
        (["--run-id", "bad id!"], "invalid run id"),
        (["--durability", "sometimes"], "Invalid value for '--durability'"),
    ],
)
def test_bad_run_arguments_exit_2(
    invoke: Invoke, journal: Path, args: list[str], message: str
) -> None:
    result = invoke("run", "cli_flows:simple", *args, code=2)
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (journal / "data.mdb").exists()  # nothing was recorded


def test_bad_arguments_with_json_print_an_error_document(invoke: Invoke) -> None:
    result = invoke("run", "cli_flows:simple", "--input", "[1,", "--json", code=2)
    assert json.loads(result.stdout)["error"]["type"] == "UsageError"
    missing = invoke("status", "--json", code=2)
    assert "RUN_ID" in json.loads(missing.stdout)["error"]["message"]


def test_run_id_taken_exits_2(invoke_json: Callable[..., Any]) -> None:
    run_simple(invoke_json, "s1")
    doc = invoke_json("run", "cli_flows:simple", "--run-id", "s1", code=2)
    assert doc["error"]["type"] == "RunExistsError"


def test_reading_commands_need_an_existing_journal(
    invoke: Invoke, journal: Path
) -> None:
    for args in (["status", "r1"], ["runs"], ["log", "r1"], ["verify"]):
        result = invoke(*args, code=2)
        assert "no journal at" in result.stderr
    assert not journal.exists()


def test_resume_warns_on_stderr_when_the_code_changed(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "cli_changing_flow.py"
    module.write_text(
        "from cli_flows import double, review\n\n"
        "async def process(inputs, ctx):\n"
        "    await ctx.task(double, {'x': 1})\n"
        "    return await ctx.task(review, {'diff': ''})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    invoke("run", "cli_changing_flow:process", "--run-id", "c1", code=3)
    # A comment is not code: the fingerprint is of the process's code object.
    module.write_text(module.read_text() + "# an edit that changes nothing\n")
    _forget_module(tmp_path, "cli_changing_flow")
    assert json.loads(invoke("resume", "c1", "--json", code=3).stdout)["warnings"] == []
    # An edit of the process that changes no call.
    module.write_text(
        module.read_text().replace("    return await", "    note = 1\n    return await")
    )
    _forget_module(tmp_path, "cli_changing_flow")

    result = invoke("resume", "c1", "--json", code=3)
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 1 and "changed: process" in warnings[0]
    # Printed once, by the CLI (not a second time by logging's fallback handler).
    assert result.stderr == f"warning: {warnings[0]}\n"


def _forget_module(folder: Path, name: str) -> None:
    """Make the next import of ``name`` read its edited file."""
    sys.modules.pop(name, None)
    for cached in folder.glob(f"__pycache__/{name}*"):
        cached.unlink()


def test_a_journal_path_that_is_a_file_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from .conftest import FLOWS_DIR

    monkeypatch.syspath_prepend(str(FLOWS_DIR))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    args = ["--journal", str(not_a_dir), "run", "cli_flows:simple", "--input", "{}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot open the journal at")
