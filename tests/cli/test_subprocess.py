"""One real-subprocess smoke test per exit code (0, 1, 2, 3).

``python -m replay_engine._cli`` runs from the directory holding
``cli_flows.py``, the way a user runs the CLI next to their process module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import FLOWS_DIR, child_env


def cli(
    *args: str, journal: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        capture_output=True,
        text=True,
        cwd=FLOWS_DIR,
        env=child_env(),
        timeout=timeout,
        check=False,
    )


def test_exit_0_completed(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    proc = cli(
        "run",
        "cli_flows:simple",
        "--input",
        '{"a": 1, "b": 2}',
        "--run-id",
        "r1",
        "--json",
        journal=journal,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == {"sum": 3, "double": 6}
    status = cli("status", "r1", "--json", journal=journal)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "completed"


def test_exit_1_failed(tmp_path: Path) -> None:
    proc = cli("run", "cli_flows:failing", journal=tmp_path / "j")
    assert proc.returncode == 1, proc.stderr
    assert "boom" in proc.stdout


def test_exit_2_usage(tmp_path: Path) -> None:
    proc = cli("run", "no_such_module_xyz:process", journal=tmp_path / "j")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot import module 'no_such_module_xyz'")
    assert proc.stdout == ""


def test_exit_3_waiting_then_resume_with_process_pool(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    proc = cli("run", "cli_flows:waits", "--run-id", "w1", "--json", journal=journal)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["pending"] == ["1"]
    again = cli("resume", "w1", "--executor", "processes", "--json", journal=journal)
    assert again.returncode == 3, again.stderr
    assert json.loads(again.stdout)["stats"]["replayed"] == 1


def test_console_script(tmp_path: Path) -> None:
    # The README's setup installs the package, console script included: a
    # missing script is an install bug, not a reason to skip.
    script = Path(sys.executable).with_name("replay-engine")
    assert script.exists(), f"{script} is missing: is replay-engine installed?"
    proc = subprocess.run(
        [str(script), "run", "cli_flows:fanout", "--executor", "processes"],
        capture_output=True,
        text=True,
        cwd=FLOWS_DIR,
        env=child_env(REPLAY_ENGINE_JOURNAL=str(tmp_path / "j")),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fanned out" in proc.stdout and "completed" in proc.stdout
    assert not (FLOWS_DIR / ".replay").exists()
