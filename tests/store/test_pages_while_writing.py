"""The page walk while another process commits: no false "damaged" report.

``page_problems`` reads ``data.mdb`` itself, not through LMDB, so it holds
no LMDB reader slot: once two newer commits exist, a writer in another
process may reuse the pages of the commit being walked, and a walk reading
them half rewritten reported healthy journals damaged (about 7% of the walks
with a writer running next to it, before the walk was repeated on a replaced
meta page; every open checks the main tree this way too). ``verify`` walks
under a read transaction, which pins the commit's pages. The two meta pages,
read one after the other, were found apart by a commit in between too.
"""

from __future__ import annotations

import select
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replay_engine import Engine
from replay_engine._store import lmdb_pages
from replay_engine._store.files import meta_problems, read_meta_pages
from replay_engine._store.lmdb_pages import (
    main_tree_problems,
    page_problems,
    reachable_past_end,
)
from tests.children import start_python

# Runs and deletes runs without pause, so commits free and reuse pages.
WRITER = r"""
import sys
from replay_engine import Engine
from tests.store.test_lmdb_pages import fan

with Engine(sys.argv[1]) as engine:
    engine.run(fan, {"n": 30}, run_id="kept")
    print("ready", flush=True)
    i = 0
    while True:
        engine.run(fan, {"n": 30}, run_id=f"r{i}")
        if i >= 10:
            engine.delete(f"r{i - 10}")
        i += 1
"""


def newest_txnid(path: Path) -> int:
    metas, _ = read_meta_pages(str(path / "data.mdb"))
    return max(m.txnid for m in metas if m.valid)


@pytest.fixture
def writing(tmp_path: Path) -> Iterator[Path]:
    """A journal another process is committing to, without pause."""
    path = tmp_path / "journal"
    proc = start_python(WRITER, str(path))
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else "(no line in 120 s)"
        assert line == "ready\n", proc.communicate(timeout=60)
        yield path
        assert proc.poll() is None, proc.communicate(timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)


def walk_for(
    seconds: float, path: Path, walk: Callable[[], list[str]]
) -> tuple[list[str], int, int]:
    """Walk repeatedly for ``seconds``: (problems, walks, commits meanwhile)."""
    first = newest_txnid(path)
    problems: list[str] = []
    walks = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        problems += walk()
        walks += 1
    return problems, walks, newest_txnid(path) - first


def test_page_walks_next_to_a_writer_report_nothing(writing: Path) -> None:
    def both() -> list[str]:
        path = str(writing)
        past = ["a reachable page past the end"] if reachable_past_end(path) else []
        return (
            page_problems(path) + main_tree_problems(path) + meta_problems(path) + past
        )

    problems, walks, commits = walk_for(4.0, writing, both)
    # Enough commits that pages were freed and reused during the walks.
    assert commits > 50 and walks > 20, (commits, walks)
    assert problems == [], (len(problems), walks, problems[:3])


def test_verify_walks_a_commit_its_read_transaction_pins(
    writing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One walk only: nothing but the pin keeps the walked pages from reuse.
    monkeypatch.setattr(lmdb_pages, "_ATTEMPTS", 1)
    with Engine(str(writing), create=False) as engine:

        def verify() -> list[str]:
            return [p.message for p in engine.verify("kept").problems]

        problems, walks, commits = walk_for(4.0, writing, verify)
    assert commits > 50 and walks > 10, (commits, walks)
    assert problems == [], (len(problems), walks, problems[:3])
