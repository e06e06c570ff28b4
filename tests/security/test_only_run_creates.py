"""Only ``run`` creates a journal (issue 12, item 3).

An empty directory, an empty ``data.mdb`` or a missing directory given to an
inspection command is "not a journal", and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial import assert_clean_error, cli

COMMANDS = [["status", "r1"], ["verify"], ["runs"], ["log", "r1"]]
IDS = ["status", "verify", "runs", "log"]


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_empty_directory_is_not_a_journal(tmp_path: Path, command: list[str]) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    done = cli(journal, *command)
    assert list(journal.iterdir()) == [], "the command wrote into the directory"
    assert_clean_error(done)
    assert "not a journal" in done.stderr, done.describe()


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_empty_data_mdb_is_not_a_journal(tmp_path: Path, command: list[str]) -> None:
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "data.mdb").write_bytes(b"")
    done = cli(journal, *command)
    assert (journal / "data.mdb").stat().st_size == 0, "data.mdb was written"
    assert sorted(p.name for p in journal.iterdir()) == ["data.mdb"]
    assert_clean_error(done)
    assert "not a journal" in done.stderr, done.describe()


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
def test_missing_directory_is_not_created(tmp_path: Path, command: list[str]) -> None:
    journal = tmp_path / "nowhere"
    done = cli(journal, *command)
    assert not journal.exists(), "an inspection command created the journal"
    assert_clean_error(done)
