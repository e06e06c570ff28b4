"""Bad processes leave no debris; bad input is a usage error (issue 12: 15, 16)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, PayloadError, PostRejected, RunNotFoundError, task
from tests.adversarial import assert_clean_error, cli, tree_snapshot
from tests.faults._support import HERE, build_waiting, copy_of


def runs_in(journal: Path) -> list[dict[str, object]]:
    if not journal.exists():
        return []
    done = cli(journal, "runs", "--json")
    assert done.returncode == 0, done.describe()
    document = json.loads(done.stdout)
    return document if isinstance(document, list) else document.get("runs", [])


@pytest.mark.parametrize(
    "ref",
    ["fault_flows:sync_process", "fault_flows:one_argument", "fault_flows:task_a"],
    ids=["sync-function", "one-argument", "task-object"],
)
def test_run_of_a_non_process_leaves_no_run(tmp_path: Path, ref: str) -> None:
    journal = tmp_path / "journal"
    done = cli(journal, "run", ref, "--run-id", "x", "--input", "{}", paths=[HERE])
    assert_clean_error(done, 2)
    assert runs_in(journal) == [], "a run was created"
    again = cli(
        journal,
        "run",
        "fault_flows:echo",
        "--run-id",
        "x",
        "--input",
        "{}",
        paths=[HERE],
    )
    assert again.returncode == 0, again.describe()


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"x": NaN}', '{"x": Infinity}', "[-Infinity]"])
def test_non_finite_input_is_refused(tmp_path: Path, text: str) -> None:
    journal = tmp_path / "journal"
    done = cli(
        journal,
        "run",
        "fault_flows:echo",
        "--run-id",
        "x",
        "--input",
        text,
        paths=[HERE],
    )
    assert_clean_error(done, 2)
    assert runs_in(journal) == []


@pytest.fixture
def waiting(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    journal = copy_of(tmp_path_factory, tmp_path, "waiting", build_waiting)
    return journal


@pytest.mark.parametrize("text", ['{"x": NaN}', "Infinity"])
def test_non_finite_post_is_refused(waiting: Path, text: str) -> None:
    before = tree_snapshot(waiting)
    done = cli(waiting, "post", "r1", "1", "--result", text)
    assert_clean_error(done, 2)
    assert tree_snapshot(waiting)["data.mdb"] == before["data.mdb"], (
        "something was written"
    )


@pytest.mark.parametrize("lease", ["nan", "inf", "1e300"])
def test_bad_lease_is_a_usage_error(waiting: Path, lease: str) -> None:
    done = cli(waiting, "pending", "r1", "--claim", "w1", "--lease", lease)
    assert_clean_error(done, 2)


def test_empty_run_id_is_a_usage_error(waiting: Path) -> None:
    done = cli(waiting, "status", "")
    assert_clean_error(done, 2)


@pytest.mark.parametrize(
    "args",
    [
        ["--event", "go", "--payload", '{"x": NaN}'],
        ["1", "--approve", "--response", "[Infinity]"],
        ["1", "--result", "1e400"],
        ["1", "--result", "[" * 5000 + "]" * 5000],
    ],
    ids=["payload-nan", "response-infinity", "result-overflow", "result-deep"],
)
def test_bad_post_values_are_usage_errors(waiting: Path, args: list[str]) -> None:
    before = tree_snapshot(waiting)
    done = cli(waiting, "post", "r1", *args, "--json")
    assert_clean_error(done, 2)
    assert json.loads(done.stdout)["error"]["exit_code"] == 2
    assert tree_snapshot(waiting)["data.mdb"] == before["data.mdb"]


@pytest.mark.parametrize("lease", ["nan", "-inf", "0", "-1", "1e300", "x"])
def test_bad_heartbeat_lease_is_a_usage_error(waiting: Path, lease: str) -> None:
    done = cli(waiting, "post", "r1", "1", "--heartbeat", "--by", "w", "--lease", lease)
    assert_clean_error(done, 2)


@pytest.mark.parametrize(
    "command",
    [
        ["status", ""],
        ["log", ""],
        ["export", "", "--format", "jsonl"],
        ["pending", ""],
        ["timeline", ""],
        ["verify", ""],
        ["iterate", ""],
        ["resume", ""],
        ["fork", "r1", "--at", "1", "--run-id", ""],
        ["status", "a/b"],
        ["status", "--", "-x"],
        ["log", "x" * 129],
    ],
    ids=lambda c: "-".join(c)[:30],
)
def test_invalid_run_ids_are_usage_errors(waiting: Path, command: list[str]) -> None:
    before = tree_snapshot(waiting)
    done = cli(waiting, *command)
    assert_clean_error(done, 2)
    assert "invalid run id" in done.stderr, done.describe()
    assert tree_snapshot(waiting) == before


@pytest.mark.parametrize(
    "command", [["status", "r1"], ["runs"], ["verify"]], ids="-".join
)
def test_journal_in_proc_is_a_clear_error(command: list[str]) -> None:
    done = cli("/proc", *command)
    assert_clean_error(done)


def test_deep_input_is_a_usage_error(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    text = "[" * 5000 + "]" * 5000
    done = cli(
        journal,
        "run",
        "fault_flows:echo",
        "--run-id",
        "x",
        "--input",
        text,
        paths=[HERE],
    )
    assert_clean_error(done, 2)
    assert runs_in(journal) == []


# -- the same rules through the Python API ---------------------------------------


@task(name="bad_input.nan")
def _nan_task() -> float:
    return float("nan")


async def _returns_nan(inputs: Any, ctx: Any) -> Any:
    """A task may produce NaN (only what users hand the engine is checked)."""
    return {"loss": await ctx.task(_nan_task, {}), "inf": [float("-inf")]}


@pytest.mark.parametrize(
    "inputs, path",
    [({"x": float("nan")}, "['x']"), ([1, {"y": [float("inf")]}], "[1]['y'][0]")],
)
def test_api_refuses_non_finite_inputs(tmp_path: Path, inputs: Any, path: str) -> None:
    with Engine(str(tmp_path / "journal")) as engine:
        with pytest.raises(PayloadError, match=re.escape(path)):
            engine.run(_returns_nan, inputs, run_id="x")
        assert engine.runs() == []


def test_api_refuses_non_finite_posts_and_leases(waiting: Path) -> None:
    before = tree_snapshot(waiting)
    with Engine(str(waiting)) as engine:
        with pytest.raises(PayloadError, match="NaN"):
            engine.post("r1", "1", result={"x": float("nan")})
        with pytest.raises(PayloadError, match="JSON has no NaN or Infinity"):
            engine.post_event("r1", "go", [float("inf")])
        for lease in (float("nan"), float("inf"), 1e300, 0.0, -1.0):
            with pytest.raises(PostRejected) as info:
                engine.claim("r1", "w1", lease=lease)
            assert info.value.reason == "invalid_lease"
    assert tree_snapshot(waiting)["data.mdb"] == before["data.mdb"]


def test_json_output_of_a_non_finite_result_is_valid_json(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with Engine(str(journal)) as engine:
        assert engine.run(_returns_nan, {}, run_id="n").status == "completed"
    for command in (["status", "n", "--json"], ["log", "n", "--json"]):
        done = cli(journal, *command)
        assert done.returncode == 0, done.describe()
        json.loads(done.stdout, parse_constant=_no_constants)
    done = cli(journal, "status", "n", "--json")
    assert json.loads(done.stdout)["result"] == {"loss": "NaN", "inf": ["-Infinity"]}
    done = cli(journal, "export", "n", "--format", "jsonl")
    for line in done.stdout.splitlines():
        json.loads(line, parse_constant=_no_constants)


def _no_constants(name: str) -> Any:
    raise AssertionError(f"{name} in JSON output")


@pytest.mark.parametrize("run_id", ["", "a/b", "x" * 129])
def test_api_reads_of_an_invalid_run_id_find_no_run(waiting: Path, run_id: str) -> None:
    """Not "the journal is damaged" (LMDB refuses an empty key)."""
    with Engine(str(waiting)) as engine:
        for read in (engine.status, engine.result, engine.events, engine.pending):
            with pytest.raises(RunNotFoundError, match="invalid run id"):
                read(run_id)
