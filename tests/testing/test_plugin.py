"""The pytest plugin, as a user project sees it.

A temporary project (a process module and a test module, nothing else) is
tested by a child ``python -m pytest`` using this interpreter, where
replay-engine is installed: the plugin must arrive by its entry point, with
the ``engine`` fixture and the ``--replay-seed``/``--replay-schedules``
options, and a nondeterministic process must fail with the clear message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

FLOWS = """
import time
from replay_engine import task


@task
def double(n: int) -> int:
    return 2 * n


async def process(inputs, ctx):
    doubled = await ctx.parallel.map(
        range(inputs["n"]), lambda i: ctx.task(double, {"n": i})
    )
    return {"total": sum(doubled), "id": str(ctx.uuid())}


async def stamped(inputs, ctx):
    return await ctx.task(double, {"n": int(time.time() * 1000)})
"""

TESTS = """
import os
from replay_engine import Engine
from replay_engine.testing import assert_deterministic

import flows


def test_the_engine_fixture(engine):
    assert isinstance(engine, Engine)
    run = engine.run(flows.process, {"n": 3}, run_id="r1")
    assert run.status == "completed"
    assert run.result["total"] == 6
    assert os.path.basename(engine.path) == "replay-journal"


def test_the_process_is_deterministic():
    report = assert_deterministic(flows.process, {"n": 3})
    assert report.seed == int(os.environ["EXPECTED_SEED"])
    assert 0 < report.schedules <= int(os.environ["EXPECTED_SCHEDULES"])
    assert report.hash_seeds == (1, 2)
"""

BAD_TESTS = """
from replay_engine.testing import assert_deterministic

import flows


def test_stamped_is_deterministic():
    assert_deterministic(flows.stamped, {})
"""


def make_project(root: Path, tests: str) -> Path:
    project = root / "user-project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "flows.py").write_text(textwrap.dedent(FLOWS), "utf-8")
    (project / "tests" / "test_flows.py").write_text(textwrap.dedent(tests), "utf-8")
    return project


def pytest_in(
    project: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "REPLAY_ENGINE_PROFILE")
        and not k.startswith("PYTEST_")
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env={**clean, "PYTHONDONTWRITEBYTECODE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_user_project_gets_the_fixture_and_the_options(tmp_path: Path) -> None:
    project = make_project(tmp_path, TESTS)
    proc = pytest_in(
        project,
        "--replay-seed=7",
        "--replay-schedules=4",
        EXPECTED_SEED="7",
        EXPECTED_SCHEDULES="4",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert "replay-engine: seed=7, schedules=4" in proc.stdout


def test_the_options_are_in_pytest_help(tmp_path: Path) -> None:
    project = make_project(tmp_path, TESTS)
    proc = pytest_in(project, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--replay-seed=N" in proc.stdout
    assert "--replay-schedules=N" in proc.stdout


def test_a_nondeterministic_process_fails_with_the_clear_message(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, BAD_TESTS)
    proc = pytest_in(project, "-q", "--replay-schedules=3")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "DeterminismFailure" in output
    assert "process flows:stamped is not deterministic" in output
    assert "the same task called with different args (they differ in 'n')" in output
    assert "flows.py:19" in output  # the ctx.task call using the clock
    assert "RE101 time.time()" in output
    assert "check_schedule(stamped, {}, Schedule())" in output


def test_a_bad_option_is_a_usage_error(tmp_path: Path) -> None:
    project = make_project(tmp_path, TESTS)
    proc = pytest_in(project, "--replay-schedules=0")
    assert proc.returncode == 4
    assert "--replay-schedules must be at least 1" in proc.stderr


NAMED_TESTS = """
from replay_engine import Engine

import flows


def test_the_replay_engine_fixture(replay_engine):
    assert isinstance(replay_engine, Engine)
    run = replay_engine.run(flows.process, {"n": 2}, run_id="r1")
    assert run.status == "completed"


def test_the_old_name_is_the_same_engine(engine, replay_engine):
    assert engine is replay_engine
"""


def test_the_fixture_is_named_replay_engine_and_engine_stays(tmp_path: Path) -> None:
    project = make_project(tmp_path, NAMED_TESTS)
    proc = pytest_in(project, "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


LIGHT = """
import sys
import pytest
before = set(sys.modules)
import replay_engine.pytest_plugin
new = sorted(set(sys.modules) - before)
heavy = [m for m in new if m.startswith(("asyncio", "replay_engine._", "hypothesis",
                                          "lmdb", "msgspec", "journal_format"))]
assert not heavy, heavy
plugin = ["replay_engine", "replay_engine.errors", "replay_engine.pytest_plugin"]
assert new == plugin, new
print("ok")
"""


def test_loading_the_plugin_imports_nothing_heavier_than_pytest() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LIGHT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
