"""Inspection runs no code named by the journal (issue 12, item 1).

A journal is a file people send each other. The run record of a crafted
journal names a process (``shutil:rmtree``, ``os:system`` or a module shipped
beside it): time travel, ``debug``, ``resume`` and ``iterate`` must refuse it
and ask for ``--process``; inspection commands import nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from replay_engine import Engine
from tests.adversarial import assert_clean_error, cli, make_journal, started, write_run

HERE = Path(__file__).parent

EVIL = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")

async def process(inputs, ctx):
    pathlib.Path({marker!r}).write_text("called")
    return {{}}
"""


@pytest.fixture
def scene(tmp_path: Path) -> dict[str, Path]:
    """A journal with runs naming hostile processes, and a cwd holding evil_mod.py."""
    journal = tmp_path / "journal"
    work = tmp_path / "work"
    work.mkdir()
    marker = tmp_path / "evil-ran"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (work / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
    make_journal(journal)
    for run_id, process, inputs in [
        ("evil", "evil_mod:process", {}),
        ("rm", "shutil:rmtree", str(victim)),
        ("sys", "os:system", f"touch {marker}"),
    ]:
        event, blobs = started(process, inputs)
        write_run(journal, run_id, [event], blobs, status="waiting")
    return {"journal": journal, "work": work, "marker": marker, "victim": victim}


def assert_untouched(scene: dict[str, Path]) -> None:
    assert not scene["marker"].exists(), "code named by the journal ran"
    precious = scene["victim"] / "precious.txt"
    assert precious.exists(), "the journal's shutil:rmtree deleted a directory"
    assert precious.read_text() == "keep me"


RUNNING = [
    ["replay", "{run}", "--until", "1"],
    ["replay", "{run}"],
    ["debug", "{run}"],
    ["resume", "{run}"],
    ["iterate", "{run}"],
]


@pytest.mark.parametrize(
    ("command", "run_id"),
    [
        (RUNNING[0], "evil"),
        (RUNNING[1], "evil"),
        (RUNNING[2], "evil"),
        (RUNNING[3], "evil"),
        (RUNNING[4], "evil"),
        (RUNNING[0], "rm"),
        (RUNNING[3], "rm"),
        (RUNNING[0], "sys"),
    ],
    ids=[
        "replay-until-evil_mod",
        "replay-evil_mod",
        "debug-evil_mod",
        "resume-evil_mod",
        "iterate-evil_mod",
        "replay-until-shutil.rmtree",
        "resume-shutil.rmtree",
        "replay-until-os.system",
    ],
)
def test_executing_commands_refuse_a_process_named_only_by_the_journal(
    scene: dict[str, Path], command: list[str], run_id: str
) -> None:
    args = [a.format(run=run_id) for a in command]
    done = cli(scene["journal"], *args, cwd=scene["work"], stdin="q\n", timeout=20)
    assert_untouched(scene)
    assert_clean_error(done, 2)
    assert "--process" in done.output, done.describe()


INSPECTING = [
    ["status", "evil"],
    ["log", "evil"],
    ["runs"],
    ["export", "evil", "--format", "jsonl"],
    ["timeline", "evil", "-o", "{tmp}/t.html"],
    ["verify"],
    ["verify", "evil"],
    ["pending", "evil"],
    ["diff", "evil", "rm"],
]


@pytest.mark.parametrize("command", INSPECTING, ids="-".join)
def test_inspection_imports_nothing(
    scene: dict[str, Path], command: list[str], tmp_path: Path
) -> None:
    args = [a.format(tmp=tmp_path) for a in command]
    done = cli(scene["journal"], *args, cwd=scene["work"])
    assert_untouched(scene)
    assert done.returncode in (0, 1, 3), done.describe()
    assert "Traceback" not in done.output, done.describe()


def test_engine_inspection_imports_nothing(
    scene: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the Python API, in this process: ``evil_mod`` never
    reaches ``sys.modules``."""
    monkeypatch.chdir(scene["work"])
    monkeypatch.delitem(sys.modules, "evil_mod", raising=False)
    engine = Engine(str(scene["journal"]))
    try:
        for run_id in ("evil", "rm", "sys"):
            engine.status(run_id)
            list(engine.events(run_id))
            engine.pending(run_id)
            engine.verify(run_id)
        engine.runs()
        engine.verify()
    finally:
        engine.close()
    assert "evil_mod" not in sys.modules
    assert_untouched(scene)


def test_a_run_started_here_resumes_without_flags(tmp_path: Path) -> None:
    """The contract's 'Which code runs': a run started by this user on this
    machine keeps working with ``resume`` and no ``--process``."""
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    env = {"SEC_SIDE": str(side)}
    kw = {"paths": [HERE], "extra_env": env, "cwd": tmp_path}
    first = cli(journal, "run", "sec_flows:process", "--run-id", "r1", **kw)
    assert first.returncode == 3, first.describe()
    posted = cli(journal, "post", "r1", "--event", "go", "--payload", "1", **kw)
    assert posted.returncode == 0, posted.describe()
    again = cli(journal, "resume", "r1", **kw)
    assert again.returncode == 0, again.describe()
    assert side.read_text().splitlines() == ["step 0", "step 1"]
