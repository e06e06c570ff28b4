"""Which code runs (the contract): remembered, allowed, or named by the user.

A run this user started here resumes without flags, from any directory and
any process; a journal copied to a new path, or one whose run was replaced
under the same path and id, is refused without ``--process``; an explicit
allow-list admits runs by their recorded reference; the remembered notes are
owner-only files outside the journal.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, ProcessImportError, task
from tests.adversarial import assert_clean_error, cli, started, write_run

HERE = Path(__file__).parent
REF = "tests.security.test_remembered_processes:waits"


@task(name="remembered.step")
def step(i: int) -> int:
    return i


async def waits(inputs: Any, ctx: Any) -> dict[str, Any]:
    a = await ctx.task(step, {"i": 1})
    go = await ctx.wait_for_event("go")
    return {"a": a, "go": go}


def not_async(inputs: Any, ctx: Any) -> Any:
    return inputs


async def one_argument(inputs: Any) -> Any:
    return inputs


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own state directory (so notes of other tests cannot help)."""
    path = tmp_path / "state"
    monkeypatch.setenv("REPLAY_ENGINE_STATE_DIR", str(path))
    return path


def start_waiting(journal: Path, run_id: str = "r1") -> None:
    with Engine(str(journal)) as engine:
        assert engine.run(waits, {}, run_id=run_id).status == "waiting"


def test_a_fresh_engine_resumes_a_remembered_run(tmp_path: Path, state: Path) -> None:
    journal = tmp_path / "journal"
    start_waiting(journal)
    with Engine(str(journal)) as engine:
        engine.post_event("r1", "go", 7)
        run = engine.resume("r1")
    assert run.status == "completed", run
    assert run.result == {"a": 1, "go": 7}


def test_the_engine_that_ran_a_closure_resumes_it(tmp_path: Path, state: Path) -> None:
    """Not importable at all: the engine object uses the function it ran."""

    async def local(inputs: Any, ctx: Any) -> Any:
        return await ctx.wait_for_event("go")

    with Engine(str(tmp_path / "journal")) as engine:
        assert engine.run(local, run_id="c").status == "waiting"
        engine.post_event("c", "go", 3)
        assert engine.resume("c").result == 3


def test_state_files_are_owner_only_and_name_the_run(
    tmp_path: Path, state: Path
) -> None:
    journal = tmp_path / "journal"
    start_waiting(journal)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    notes = list(state.iterdir())
    assert len(notes) == 1, notes
    assert stat.S_IMODE(notes[0].stat().st_mode) == 0o600
    note = json.loads(notes[0].read_text())
    assert note["run_id"] == "r1"
    assert note["process"] == REF
    assert note["journal"] == str(journal.resolve())


def test_a_run_not_started_here_is_refused_before_any_import(
    tmp_path: Path, state: Path
) -> None:
    journal = tmp_path / "journal"
    Engine(str(journal)).close()
    event, blobs = started(REF, {})
    write_run(journal, "x", [event], blobs, status="waiting")
    with Engine(str(journal)) as engine:
        for attempt in (engine.resume, engine.replay, engine.process_for):
            with pytest.raises(ProcessImportError, match="process="):
                attempt("x")
        # Naming the code yourself always works.
        assert engine.replay("x", process=waits).process_status == "frontier"


def test_the_allow_list_admits_runs_by_reference(tmp_path: Path, state: Path) -> None:
    journal = tmp_path / "journal"
    Engine(str(journal)).close()
    event, blobs = started(REF, {})
    write_run(journal, "x", [event], blobs, status="waiting")
    for allowed in ([waits], [REF]):
        with Engine(str(journal), processes=allowed) as engine:
            assert engine.replay("x").process_status == "frontier"
    with (
        Engine(str(journal), processes=[f"{__name__}:one_argument"]) as engine,
        pytest.raises(ProcessImportError, match="not known here"),
    ):
        engine.replay("x")


def test_the_allow_list_refuses_non_processes(tmp_path: Path, state: Path) -> None:
    for bad in (not_async, one_argument, step):
        with pytest.raises(ProcessImportError):
            Engine(str(tmp_path / "journal"), processes=[bad])


def test_a_replaced_first_event_is_refused(tmp_path: Path, state: Path) -> None:
    """Same path, same run id, same process reference: but not the run we started."""
    journal, other = tmp_path / "journal", tmp_path / "other"
    start_waiting(journal)
    Engine(str(other)).close()
    event, blobs = started(REF, {})
    write_run(other, "r1", [event], blobs, status="waiting")
    shutil.rmtree(journal)
    shutil.copytree(other, journal)  # someone else's r1, where ours was
    with Engine(str(journal)) as engine:
        with pytest.raises(ProcessImportError, match="first event"):
            engine.resume("r1")
        assert engine.resume("r1", process=waits).status == "waiting"


def test_a_fork_of_a_remembered_run_is_remembered(tmp_path: Path, state: Path) -> None:
    journal = tmp_path / "journal"
    start_waiting(journal)
    with Engine(str(journal)) as engine:
        engine.fork("r1", at=2, new_run_id="r1b")
    with Engine(str(journal)) as engine:
        engine.post_event("r1b", "go", 1)
        assert engine.resume("r1b").status == "completed"


@pytest.mark.parametrize("bad", [not_async, one_argument, step])
def test_engine_run_of_a_non_process_records_nothing(
    tmp_path: Path, state: Path, bad: Any
) -> None:
    with Engine(str(tmp_path / "journal")) as engine:
        with pytest.raises(ProcessImportError) as caught:
            engine.run(bad, {}, run_id="x")
        assert isinstance(caught.value, TypeError)
        if bad is step:
            assert "is a task" in str(caught.value)
        assert engine.runs() == []
        # The id is still free, and an explicit non-process is refused too.
        assert engine.run(waits, {}, run_id="x").status == "waiting"
        with pytest.raises(ProcessImportError):
            engine.resume("x", process=bad)


# -- across processes and directories (the CLI) ---------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory holding the process module, on no PYTHONPATH."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(HERE / "sec_flows.py", proj / "sec_flows.py")
    return proj


def test_a_remembered_run_resumes_from_another_directory(
    tmp_path: Path, project: Path
) -> None:
    journal = tmp_path / "journal"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    side = tmp_path / "side"
    env = {"SEC_SIDE": str(side), "REPLAY_ENGINE_STATE_DIR": str(tmp_path / "st")}
    first = cli(
        journal,
        "run",
        "sec_flows:process",
        "--run-id",
        "r1",
        cwd=project,
        extra_env=env,
    )
    assert first.returncode == 3, first.describe()
    posted = cli(
        journal,
        "post",
        "r1",
        "--event",
        "go",
        "--payload",
        "1",
        cwd=elsewhere,
        extra_env=env,
    )
    assert posted.returncode == 0, posted.describe()
    again = cli(journal, "resume", "r1", cwd=elsewhere, extra_env=env)
    assert again.returncode == 0, again.describe()
    assert side.read_text().splitlines() == ["step 0", "step 1"]


def test_a_copied_journal_needs_process(tmp_path: Path, project: Path) -> None:
    journal = tmp_path / "journal"
    env = {"REPLAY_ENGINE_STATE_DIR": str(tmp_path / "st")}
    first = cli(
        journal,
        "run",
        "sec_flows:process",
        "--run-id",
        "r1",
        cwd=project,
        extra_env=env,
    )
    assert first.returncode == 3, first.describe()
    copy = tmp_path / "copy"
    shutil.copytree(journal, copy)
    for command in (["resume", "r1"], ["iterate", "r1"], ["replay", "r1"]):
        refused = cli(copy, *command, cwd=project, extra_env=env)
        assert_clean_error(refused, 2)
        assert "--process" in refused.output, refused.describe()
    named = cli(
        copy,
        "replay",
        "r1",
        "--process",
        "sec_flows:process",
        cwd=project,
        extra_env=env,
    )
    assert named.returncode == 0, named.describe()
    resumed = cli(
        copy,
        "resume",
        "r1",
        "--process",
        "sec_flows:process",
        cwd=project,
        extra_env=env,
    )
    assert resumed.returncode == 3, resumed.describe()


def test_a_note_the_starter_never_completed_still_matches(
    tmp_path: Path, state: Path
) -> None:
    """Killed between creating the run and completing its note: the note made
    before the run (content and time) still identifies it; a stale one does not."""
    journal = tmp_path / "journal"
    start_waiting(journal)
    (note_file,) = state.iterdir()
    note = json.loads(note_file.read_text())
    del note["first_event"]
    note_file.write_text(json.dumps(note))
    with Engine(str(journal)) as engine:
        assert engine.replay("r1").process_status == "frontier"
    note["created_ns"] -= 3600 * 10**9
    note_file.write_text(json.dumps(note))
    with Engine(str(journal)) as engine, pytest.raises(ProcessImportError):
        engine.replay("r1")
