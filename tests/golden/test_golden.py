"""Every golden journal under ``tests/golden/v*/`` still reads, verifies and replays.

Each was written once by ``make_golden.py`` for its format version and is
committed; this is how users' journals survive upgrades. A reader that cannot
decode the committed bytes (a changed event struct, key codec or layout)
fails here. The tests work on a copy: the committed files are never opened
for writing.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

import journal_format as jf
from replay_engine import Engine
from tests.helpers import cli_invoker

HERE = Path(__file__).resolve().parent
VERSIONS = sorted(p for p in HERE.glob("v*") if p.is_dir())
# Event types added to format version 1 (additive, optional) after its golden
# journal was written: a committed golden journal is never rewritten, so it
# lacks them. Tests of their reading live beside their feature
# (tests/executions/, tests/cancel/).
ADDED_IN_V1 = {
    "execution",
    "cancel_requested",
    "run_cancelled",
    "run_timed_out",
    "patched",
    "race_won",
    "failed_fast",
}
ALL_TAGS = {t.__struct_config__.tag for t in jf.EVENT_TYPES}
SNAPSHOT_STATUS = {"completed": "completed", "failed": "failed", "waiting": "frontier"}


def test_this_format_version_has_a_golden_journal() -> None:
    assert HERE / f"v{jf.FORMAT_VERSION}" in VERSIONS


@pytest.fixture(params=VERSIONS, ids=lambda p: p.name)
def golden(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.fixture
def manifest(golden: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((golden / "manifest.json").read_text())
    return data


@pytest.fixture
def journal(golden: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the golden journal; the committed bytes are checked untouched."""
    committed = golden / "journal" / "data.mdb"
    before = hashlib.sha256(committed.read_bytes()).hexdigest()
    copy = tmp_path / "journal"
    shutil.copytree(golden / "journal", copy)
    yield copy
    assert hashlib.sha256(committed.read_bytes()).hexdigest() == before


# The golden journal was not started here (it is a committed copy), so its
# processes are named explicitly: a journal's own references are never trusted.
GOLDEN_PROCESSES = [
    f"tests.golden.golden_flows:{name}" for name in ("basics", "externals", "abandons")
]


@pytest.fixture
def engine(journal: Path) -> Iterator[Engine]:
    with Engine(str(journal), processes=GOLDEN_PROCESSES) as engine:
        yield engine


def test_it_covers_every_event_type(manifest: dict[str, Any]) -> None:
    seen = {tag for run in manifest["runs"].values() for tag in run["event_counts"]}
    assert seen == ALL_TAGS - ADDED_IN_V1


def test_it_verifies(engine: Engine, manifest: dict[str, Any]) -> None:
    report = engine.verify()
    assert report.ok, report.problems
    assert report.runs == len(manifest["runs"])


def test_each_run_reads_as_written(engine: Engine, manifest: dict[str, Any]) -> None:
    assert sorted(r.run_id for r in engine.runs()) == sorted(manifest["runs"])
    for run_id, expected in manifest["runs"].items():
        info = engine.status(run_id)
        assert info.status == expected["status"], run_id
        assert info.events == expected["events"], run_id
        assert list(info.pending) == expected.get("pending", []), run_id
        if "result" in expected:
            assert engine.result(run_id) == expected["result"], run_id
        if "error_type" in expected:
            assert info.error is not None and info.error.type == expected["error_type"]
        counts = collections.Counter(
            jf.event_tag(s.event) for s in engine.events(run_id)
        )
        assert dict(counts) == expected["event_counts"], run_id


def test_the_fork_and_the_post(engine: Engine, manifest: dict[str, Any]) -> None:
    fork = manifest["fork"]
    info = engine.status(fork["run"])
    assert (info.parent, info.fork_at) == (fork["parent"], fork["at"])
    post = manifest["post"]
    answers = [
        engine.payload(s.event.result)
        for s in engine.events(post["run"])
        if isinstance(s.event, jf.EffectCompleted)
        and jf.key_bytes_to_text(s.event.key) == post["key"]
    ]
    assert answers == [post["result"]]


def test_the_checkpoints_decode(journal: Path, manifest: dict[str, Any]) -> None:
    env = lmdb.open(str(journal), max_dbs=8, readonly=True, lock=False)
    try:
        db = env.open_db(jf.DB_CHECKPOINTS, create=False)
        with env.begin(db=db) as txn:
            raw = {r: txn.get(jf.run_prefix(r)) for r in manifest["checkpoints"]}
    finally:
        env.close()
    assert manifest["checkpoints"], "the golden journal must hold a checkpoint"
    for run_id, events in manifest["checkpoints"].items():
        assert raw[run_id] is not None, run_id
        checkpoint = jf.decode_checkpoint(jf.unseal(raw[run_id])[1])
        assert (checkpoint.run_id, checkpoint.events) == (run_id, events)


def test_each_run_replays(engine: Engine, manifest: dict[str, Any]) -> None:
    for run_id, expected in manifest["runs"].items():
        snapshot = engine.replay(run_id)
        assert snapshot.process_status == SNAPSHOT_STATUS[expected["status"]], run_id
        assert snapshot.until == expected["events"], run_id
        if "result" in expected:
            assert snapshot.result == expected["result"], run_id
        if "pending" in expected:
            assert [f.key for f in snapshot.frontier] == expected["pending"], run_id


def test_each_run_exports(journal: Path, manifest: dict[str, Any]) -> None:
    invoke = cli_invoker(journal)
    seen: set[str] = set()
    for run_id, expected in manifest["runs"].items():
        out = invoke("export", run_id, "--format", "jsonl", code=0).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        assert [r["seq"] for r in rows] == list(range(expected["events"]))
        counts = collections.Counter(r["type"] for r in rows)
        assert dict(counts) == expected["event_counts"], run_id
        seen |= set(counts)
    assert seen == ALL_TAGS - ADDED_IN_V1
