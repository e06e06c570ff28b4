"""Journals are owner-only (issue 12, item 6): directory 0700, files 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from replay_engine import Engine
from tests.adversarial import cli
from tests.security._support import HERE


def modes(journal: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(journal.stat().st_mode)}
    for p in journal.rglob("*"):
        found[str(p.relative_to(journal))] = stat.S_IMODE(p.stat().st_mode)
    return found


def assert_owner_only(journal: Path) -> None:
    found = modes(journal)
    assert "data.mdb" in found, found
    for name, mode in found.items():
        is_dir = (journal / name).is_dir()
        expected = 0o700 if is_dir else 0o600
        assert mode == expected, (
            f"{name}: {oct(mode)}, expected {oct(expected)} (all: {found})"
        )


def test_cli_run_creates_an_owner_only_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    old = os.umask(0o022)
    try:
        done = cli(
            journal,
            "run",
            "sec_flows:process",
            "--run-id",
            "r1",
            paths=[HERE],
            cwd=tmp_path,
        )
    finally:
        os.umask(old)
    assert done.returncode == 3, done.describe()
    assert_owner_only(journal)


def test_engine_creates_an_owner_only_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    old = os.umask(0o022)
    try:
        Engine(str(journal)).close()
    finally:
        os.umask(old)
    assert_owner_only(journal)
