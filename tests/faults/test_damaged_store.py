"""Read-only stores and truncated ``data.mdb`` (issue 12, items 8 and 9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.adversarial import assert_clean_error, cli
from tests.faults._support import HERE, build_posted, copy_of, read_only_view


@pytest.fixture
def journal(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """``r1`` waiting with its agent's result posted: a resume would run a task."""
    journal = copy_of(tmp_path_factory, tmp_path, "posted", build_posted)
    return journal


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_read_only_store_refuses_before_executing(
    journal: Path, tmp_path: Path
) -> None:
    view = tmp_path / "ro"
    side = tmp_path / "side"
    with read_only_view(journal, view):
        done = cli(
            view,
            "resume",
            "r1",
            "--json",
            paths=[HERE],
            extra_env={"FAULT_SIDE": str(side)},
            timeout=15,
        )
        assert not side.exists(), "a task ran on a read-only journal"
        assert_clean_error(done)
        assert (
            "read-only" in done.output.lower() or "read only" in done.output.lower()
        ), done.describe()


def _truncate(journal: Path, size: str) -> None:
    data = journal / "data.mdb"
    length = data.stat().st_size
    page = 4096
    new = {
        "half": length // 2,
        "one-page": page,
        "meta-only": 2 * page,
        "odd": 3 * page + 100,
    }[size]
    assert new < length, (size, length)
    os.truncate(data, new)


COMMANDS = [["status", "r1"], ["runs"], ["verify"], ["log", "r1"], ["resume", "r1"]]


@pytest.mark.parametrize("size", ["half", "one-page", "meta-only"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_truncated_data_mdb_is_a_named_error(
    journal: Path, size: str, command: list[str]
) -> None:
    _truncate(journal, size)
    done = cli(journal, *command, paths=[HERE], timeout=20)
    assert_clean_error(done)
    assert str(journal) in done.stderr, done.describe()
