"""``replay-engine check`` through the real console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def check(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "check", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("process", "code"),
    [
        ("wall_clock", "RE101"),
        ("direct_random", "RE102"),
        ("set_iteration", "RE107"),
    ],
)
def test_each_hazard_exits_1_with_its_code(process: str, code: str) -> None:
    result = check(f"tests.testing.hazards:{process}", "--json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert code in {f["code"] for f in findings}
    assert all(f["line"] > 0 and f["replacement"] for f in findings)


def test_a_clean_process_exits_0() -> None:
    result = check("tests.testing.hazards:wall_clock_fixed")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unimportable_process_exits_2() -> None:
    result = check("tests.testing.no_such_module:process")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
