"""Bad processes leave no debris; bad input is a usage error (issue 12: 15, 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


@pytest.mark.xfail(
    reason="bug: issue 12: NaN/Infinity are accepted in --input", strict=True
)
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


@pytest.mark.xfail(
    reason="bug: issue 12: NaN/Infinity are accepted in post --result", strict=True
)
@pytest.mark.parametrize("text", ['{"x": NaN}', "Infinity"])
def test_non_finite_post_is_refused(waiting: Path, text: str) -> None:
    before = tree_snapshot(waiting)
    done = cli(waiting, "post", "r1", "1", "--result", text)
    assert_clean_error(done, 2)
    assert tree_snapshot(waiting)["data.mdb"] == before["data.mdb"], (
        "something was written"
    )


@pytest.mark.xfail(
    reason="bug: issue 12: --lease nan|inf|1e300 gives a traceback or is accepted",
    strict=True,
)
@pytest.mark.parametrize("lease", ["nan", "inf", "1e300"])
def test_bad_lease_is_a_usage_error(waiting: Path, lease: str) -> None:
    done = cli(waiting, "pending", "r1", "--claim", "w1", "--lease", lease)
    assert_clean_error(done, 2)


@pytest.mark.xfail(reason="bug: issue 12: status '' gives a traceback", strict=True)
def test_empty_run_id_is_a_usage_error(waiting: Path) -> None:
    done = cli(waiting, "status", "")
    assert_clean_error(done, 2)


@pytest.mark.parametrize(
    "command", [["status", "r1"], ["runs"], ["verify"]], ids="-".join
)
def test_journal_in_proc_is_a_clear_error(command: list[str]) -> None:
    done = cli("/proc", *command)
    assert_clean_error(done)


@pytest.mark.xfail(
    reason="bug: issue 12: 5000-deep --input gives a traceback", strict=True
)
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
