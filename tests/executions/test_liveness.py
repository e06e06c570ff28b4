"""Liveness you can see: ``status``/``runs`` tell ``running`` from ``interrupted``.

A run stored ``running`` whose executor was SIGKILLed is ``interrupted`` (no
live process holds its lock); one whose executor is blocked in a task is
``running``, with that executor's pid, host, since and ``alive``. Inspection
takes no lock and writes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from replay_engine import Engine

from .conftest import cli, cli_json, finish, run_in_child, wait_until
from .exec_flows import side_lines


def _start_blocked(journal: Path, side: Path, gate: Path) -> subprocess.Popen[str]:
    proc = run_in_child(
        "run", journal, "r", "counted_then_gated", {"gate": str(gate)}, side=side
    )
    wait_until(
        "the gated task to run",
        lambda: any(line["what"] == "gate" for line in side_lines(side)),
        proc,
    )
    return proc


def test_a_live_executor_is_running_with_its_pid(
    engine: Engine, journal: Path, side: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    proc = _start_blocked(journal, side, gate)
    try:
        info = engine.status("r")
        assert info.status == "running"
        assert info.executor is not None
        assert (info.executor.pid, info.executor.alive) == (proc.pid, True)
        assert info.executor.holds_lock is True
        doc = cli_json(journal, "status", "r")
        assert doc["status"] == "running" and doc["stored_status"] == "running"
        assert doc["executor"]["pid"] == proc.pid
        assert doc["executor"]["alive"] is True
        assert doc["executor"]["holds_lock"] is True
        assert doc["executor"]["host"] == os.uname().nodename
        assert doc["executor"]["since"]
        human = cli(journal, "status", "r").stdout
        assert f"pid {proc.pid}" in human and "alive" in human
        rows = cli_json(journal, "runs", "--status", "running")
        assert [r["run_id"] for r in rows] == ["r"]
        assert cli_json(journal, "runs", "--status", "interrupted") == []
        # The probe took nothing: the executor goes on and completes.
        gate.touch()
        out = finish(proc)
    finally:
        gate.touch()
    assert out["status"] == "completed"
    assert cli_json(journal, "status", "r")["executor"] is None


def test_a_killed_executor_is_interrupted(
    engine: Engine, journal: Path, side: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    proc = _start_blocked(journal, side, gate)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    info = engine.status("r")
    assert (info.status, info.stored_status) == ("interrupted", "running")
    assert info.executor is not None and info.executor.holds_lock is False
    # The dead holder is still named, and known dead.
    assert (info.executor.pid, info.executor.alive) == (proc.pid, False)
    before = sorted(os.listdir(journal)), (journal / "data.mdb").stat().st_mtime_ns
    doc = cli_json(journal, "status", "r")  # exit 0: status reports, it does not mirror
    assert doc["status"] == "interrupted"
    assert doc["executor"]["alive"] is False
    assert "interrupted" in cli(journal, "status", "r").stdout
    rows = cli_json(journal, "runs", "--status", "interrupted")
    assert [r["run_id"] for r in rows] == ["r"]
    assert cli_json(journal, "runs", "--status", "running") == []
    assert "interrupted" in cli(journal, "runs").stdout
    # Inspection wrote nothing.
    after = sorted(os.listdir(journal)), (journal / "data.mdb").stat().st_mtime_ns
    assert after == before
    # A resume takes the run over: it is running (then completed), not interrupted.
    gate.touch()
    assert engine.resume("r").status == "completed"
    assert engine.status("r").status == "completed"
