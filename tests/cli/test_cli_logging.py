"""Logging that fits (issue 16): the library only logs (no handlers of its
own); the console script shows the records on stderr through rich, with
``-v``/``-q`` on the group.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import FLOWS_DIR, child_env

FANOUT = ("run", "cli_flows:fanout", "--input", '{"items": [1, 2]}')


def cli(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replay_engine._cli", "--journal", str(journal), *args],
        capture_output=True,
        text=True,
        cwd=FLOWS_DIR,
        env=child_env(COLUMNS="200"),
        timeout=120,
        check=False,
    )


def test_verbose_shows_the_process_log_lines_on_stderr(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    quiet = cli(journal, *FANOUT, "--run-id", "a")
    assert quiet.returncode == 0, quiet.stderr
    assert "fanned out" not in quiet.stderr  # INFO: hidden by default
    loud = cli(journal, "-v", *FANOUT, "--run-id", "b")
    assert loud.returncode == 0, loud.stderr
    assert "INFO" in loud.stderr and "fanned out" in loud.stderr
    assert "Traceback" not in loud.stderr


def test_quiet_and_verbose_are_group_options(tmp_path: Path) -> None:
    journal = tmp_path / "j"
    proc = cli(journal, "-q", *FANOUT, "--run-id", "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    help_text = cli(journal, "--help").stdout
    assert "-v, --verbose" in help_text and "-q, --quiet" in help_text


LIBRARY = """
import logging, sys
sys.path.insert(0, sys.argv[2])
import cli_flows
from replay_engine import Engine
with Engine(sys.argv[1]) as engine:
    engine.run(cli_flows.fanout, {"items": [1]}, run_id="lib")
names = [n for n in logging.root.manager.loggerDict if n.startswith("replay_engine")]
assert names, "the library logs through replay_engine loggers"
with_handlers = [n for n in names if logging.getLogger(n).handlers]
assert not with_handlers, with_handlers
assert not logging.root.handlers, logging.root.handlers
print("ok")
"""


def test_the_library_installs_no_handlers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LIBRARY, str(tmp_path / "j"), str(FLOWS_DIR)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
