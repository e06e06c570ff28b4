"""Resumes that stop early keep the run's state and report the real cause
(issue 12, item 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adversarial import cli
from tests.faults._support import HERE, build_waiting, copy_of


@pytest.fixture
def journal(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    journal = copy_of(tmp_path_factory, tmp_path, "waiting", build_waiting)
    return journal


def run_ids(journal: Path, status: str) -> list[str]:
    done = cli(journal, "runs", "--status", status, "--json")
    assert done.returncode == 0, done.describe()
    document = json.loads(done.stdout)
    rows = document if isinstance(document, list) else document.get("runs", [])
    return [row["run_id"] for row in rows]


def test_waiting_run_stays_waiting_after_non_determinism(journal: Path) -> None:
    done = cli(
        journal,
        "resume",
        "r1",
        "--process",  # the journal is a copy: name the code to run
        "fault_flows:waiter",
        "--json",
        paths=[HERE],
        extra_env={"FAULT_VARIANT": "diverge"},
    )
    assert done.returncode != 0, done.describe()
    assert "NonDeterminismError" in done.stdout, done.describe()
    assert run_ids(journal, "waiting") == ["r1"]


def test_exception_before_a_recorded_call_is_reported(journal: Path) -> None:
    done = cli(
        journal,
        "resume",
        "r1",
        "--process",  # the journal is a copy: name the code to run
        "fault_flows:waiter",
        "--json",
        paths=[HERE],
        extra_env={"FAULT_VARIANT": "raise"},
    )
    assert done.returncode != 0, done.describe()
    assert "Traceback" not in done.stderr, done.describe()
    assert "boom-before-any-call" in done.output, done.describe()
    assert "ValueError" in done.output, done.describe()
    assert "fewer" not in done.output.lower(), done.describe()
