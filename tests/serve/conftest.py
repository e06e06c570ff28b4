"""The journal the server tests serve: three waiting runs, started by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve.servers import start_run


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "journal"
    start_run(path, "approval", "bp1", {"title": "deploy?", "payload": {"diff": "+1"}})
    start_run(path, "agents", "ag1", {"n": 3})
    start_run(path, "signalled", "sg1", {})
    return path
