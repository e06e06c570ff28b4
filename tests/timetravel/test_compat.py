"""``compat`` / ``Engine.check_compatible``: which stored runs new code breaks.

The CI gate before a deploy. Runs are recorded with one version of a module;
the module file is then rewritten, as a deploy would, and ``compat`` replays
every stored run of the process against the new code, read-only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from replay_engine import Engine
from tests.helpers import child_env

V1 = """
from replay_engine import task

@task(name="c.add")
def add(x, y):
    return x + y

async def process(inputs, ctx):
    a = await ctx.task(add, {"x": inputs["n"], "y": 1})
    if inputs["n"] > 5:
        a = await ctx.task(add, {"x": a, "y": 100})
    return a
"""
# Only the branch for n > 5 changes: runs with n <= 5 never reach it.
V2 = V1.replace('{"x": a, "y": 100}', '{"x": a, "y": 200}')
# A task implementation that changes, with the same calls: safe to replay.
V3 = V1.replace("return x + y", "return y + x")


def _write(folder: Path, source: str) -> None:
    (folder / "compat_flow.py").write_text(source)
    for cached in folder.glob("__pycache__/compat_flow*"):
        cached.unlink()


def _record(journal: Path, folder: Path) -> None:
    code = (
        "import sys\n"
        "from replay_engine import Engine\n"
        "with Engine(sys.argv[1], durability='process') as engine:\n"
        "    for n in (1, 2, 9):\n"
        "        run = engine.run('compat_flow:process', {'n': n}, run_id=f'n{n}')\n"
        "        assert run.status == 'completed', run.error\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(journal)],
        env=child_env(folder),
        cwd=folder,
        check=True,
        timeout=60,
    )


def _cli(journal: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        env=child_env(folder),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compat(
    journal: Path, folder: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return _cli(journal, folder, "compat", "compat_flow:process", *args)


def test_compat_names_exactly_the_runs_a_change_breaks(tmp_path: Path) -> None:
    folder, journal = tmp_path / "code", tmp_path / "j"
    folder.mkdir()
    _write(folder, V1)
    _record(journal, folder)
    before = (journal / "data.mdb").read_bytes()

    _write(folder, V1)
    same = _compat(journal, folder, "--json")
    assert same.returncode == 0, same.stderr
    doc = json.loads(same.stdout)
    assert [r["verdict"] for r in doc["runs"]] == ["compatible"] * 3

    _write(folder, V2)
    changed = _compat(journal, folder, "--json")
    assert changed.returncode == 1, changed.stderr
    doc = json.loads(changed.stdout)
    verdicts = {r["run_id"]: (r["verdict"], r["key"]) for r in doc["runs"]}
    assert verdicts == {
        "n1": ("compatible", None),
        "n2": ("compatible", None),
        "n9": ("breaks", "1"),
    }
    assert (doc["compatible"], doc["breaks"], doc["errors"]) == (2, 1, 0)
    human = _compat(journal, folder)
    assert human.returncode == 1 and "2 of 3 runs compatible" in human.stdout
    # The table shows where the breaking run diverges: both calls and the line.
    assert "recorded: task" in human.stdout and "replayed: task" in human.stdout
    assert "call site: " in human.stdout

    _write(folder, V3)
    safe = _compat(journal, folder, "--runs", "n9", "--json")
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert [r["run_id"] for r in json.loads(safe.stdout)["runs"]] == ["n9"]

    # Read-only: nothing was dispatched or written by any of it.
    assert (journal / "data.mdb").read_bytes() == before


def test_compat_of_an_unknown_process_or_run_is_a_usage_error(tmp_path: Path) -> None:
    folder, journal = tmp_path / "code", tmp_path / "j"
    folder.mkdir()
    _write(folder, V1)
    _record(journal, folder)
    missing = _cli(journal, folder, "compat", "no_such_module:process")
    assert missing.returncode == 2, missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = _compat(journal, folder, "--runs", "nope")
    assert unknown.returncode == 2, unknown.stderr


def test_check_compatible_in_python(tmp_path: Path) -> None:
    folder, journal = tmp_path / "code", tmp_path / "j"
    folder.mkdir()
    _write(folder, V1)
    _record(journal, folder)
    sys.path.insert(0, str(folder))
    try:
        import compat_flow

        with Engine(str(journal), durability="process") as engine:
            found = engine.check_compatible(compat_flow.process)
            assert [(c.run_id, c.compatible) for c in found] == [
                ("n1", True),
                ("n2", True),
                ("n9", True),
            ]
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("compat_flow", None)
