"""The LMDB store on a real environment on disk: appends, reads, commits, growth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import journal_format as jf
from replay_engine._store.store import Store
from replay_engine.errors import ReplayEngineError, RunExistsError, RunNotFoundError
from tests.children import run_child
from tests.helpers import (
    child_env,
    completed,
    effects,
    new_run,
    payload,
    requested,
    started,
)

MakeStore = Callable[..., Store]

# A child that opens the journal in argv[1] and prints run argv[2] as JSON.
DUMP_RUN = """
import json, sys
import journal_format as jf
from replay_engine._store.store import Store
store = Store(sys.argv[1])
record = store.require_run(sys.argv[2])
events = store.read_events(sys.argv[2])
print(json.dumps({
    "count": record.events,
    "head": record.head.hex(),
    "seqs": [e.seq for e in events],
    "digests": [e.digest.hex() for e in events],
    "tags": [jf.event_tag(e.event) for e in events],
}))
store.close()
"""


def _txnid(store: Store) -> int:
    txnid: int = store._handle.env.info()["last_txnid"]
    return txnid


# -- round trip ------------------------------------------------------------------


def test_create_append_read_round_trip(store: Store) -> None:
    start, start_blobs = started({"feature": "x"})
    store.create_run("r1", start, start_blobs)
    events, blobs = effects([(0,), (1, 0, 2), (1, 1, 0)])
    result = store.append("r1", events, blobs, status="waiting")
    assert (result.first_seq, result.count) == (1, 6)

    stored = store.read_events("r1")
    assert [e.seq for e in stored] == list(range(7))
    assert [e.event for e in stored] == [start, *events]
    assert stored[-1].digest == result.head

    record = store.require_run("r1")
    assert (record.events, record.head, record.status) == (7, result.head, "waiting")
    assert (record.process, record.fingerprint) == (start.process, start.fingerprint)
    for address, data in {**start_blobs, **blobs}.items():
        assert store.get_blob(address) == data
    assert store.get_blobs(list(blobs)) == blobs


def test_read_events_slices(store: Store) -> None:
    new_run(store, "r1")
    store.append("r1", *effects(range(5)))
    assert [e.seq for e in store.read_events("r1", 3)] == list(range(3, 11))
    assert [e.seq for e in store.read_events("r1", 2, 5)] == [2, 3, 4]
    assert store.read_events("r1", 11) == []
    assert store.read_events("nope") == []


def test_chain_links_each_event_to_the_previous(store: Store) -> None:
    new_run(store, "r1")
    store.append("r1", *effects(range(3)))
    store.append("r1", *effects(range(3, 4)))  # a second commit continues the chain
    stored = store.read_events("r1")
    prev = jf.genesis_digest("r1")
    for event in stored:
        assert event.envelope.prev == prev
        prev = event.digest
    assert store.require_run("r1").head == prev


def test_runs_are_independent(store: Store) -> None:
    for run_id in ("a", "a1", "b"):
        new_run(store, run_id, inputs={"id": run_id})
    store.append("a1", *effects(range(2)))
    assert [len(store.read_events(r)) for r in ("a", "a1", "b")] == [1, 5, 1]
    assert [r.run_id for r in store.list_runs()] == ["a", "a1", "b"]
    assert store.get_run("zzz") is None


def test_seqs_for_key_and_index_scan(store: Store) -> None:
    new_run(store, "r1")
    events, blobs = effects([(0,), (1, 0), (1, 1)])
    log = jf.LogLine(key=jf.encode_key((1, 0)), ordinal=0, message="m")
    store.append("r1", [*events, log], blobs)
    assert store.seqs_for_key("r1", jf.encode_key((1, 0))) == [3, 4, 7]
    assert store.seqs_for_key("r1", jf.encode_key((1,))) == []
    assert store.seqs_for_key("other", jf.encode_key((0,))) == []
    index = list(store.scan_index("r1"))
    assert [(jf.decode_key(k), s) for k, s in index] == [
        ((0,), 1),
        ((0,), 2),
        ((1, 0), 3),
        ((1, 0), 4),
        ((1, 0), 7),
        ((1, 1), 5),
        ((1, 1), 6),
    ]


# -- errors ----------------------------------------------------------------------


def test_duplicate_create_is_refused(store: Store) -> None:
    new_run(store, "r1")
    event, blobs = started({"other": True})
    with pytest.raises(RunExistsError, match="'r1' already exists"):
        store.create_run("r1", event, blobs)
    assert len(store.read_events("r1")) == 1
    assert event.inputs not in dict(store.raw_items(jf.DB_BLOBS))  # rolled back


def test_unknown_run_names_close_matches(store: Store) -> None:
    for run_id in ("build-42", "build-7", "deploy"):
        new_run(store, run_id)
    with pytest.raises(RunNotFoundError) as info:
        store.require_run("build-43")
    assert info.value.run_id == "build-43"
    assert "Closest matches: build-42" in str(info.value)
    assert "deploy" not in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(RunNotFoundError, match="List runs with"):
        store.require_run("zzzzzz")


def test_append_to_unknown_run_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFoundError):
        store.append("ghost", *effects(range(1)))
    assert store.raw_items(jf.DB_EVENTS) == []


def test_invalid_run_id_is_refused(store: Store) -> None:
    event, blobs = started()
    with pytest.raises(jf.FormatError, match="invalid run id"):
        store.create_run("../x", event, blobs)


@pytest.mark.parametrize("durability", ["bogus", "FSYNC", "", None])
def test_unknown_durability_is_refused(durability: object, journal_dir: Path) -> None:
    with pytest.raises(ValueError, match="durability must be 'fsync' or 'process'"):
        Store(str(journal_dir), durability=durability)  # type: ignore[arg-type]
    assert not journal_dir.exists()


# -- group commit ----------------------------------------------------------------


def test_one_append_is_one_commit(store: Store, journal_dir: Path) -> None:
    new_run(store, "r1")
    events, blobs = [], {}
    for i in range(500):
        for event, blob in (requested((i,)), completed((i,), {"i": i})):
            events.append(event)
            blobs |= blob
    commits, txnid = store.commits, _txnid(store)
    result = store.append("r1", events, blobs)
    assert len(events) == 1000
    assert store.commits == commits + 1
    assert _txnid(store) == txnid + 1  # LMDB's own count of write transactions

    seen = json.loads(run_child(DUMP_RUN, str(journal_dir), "r1"))
    assert seen["count"] == 1001
    assert seen["seqs"] == list(range(1001))
    assert seen["head"] == result.head.hex()
    assert seen["tags"][1:3] == ["requested", "completed"]


# -- durability ------------------------------------------------------------------


@pytest.mark.parametrize(("durability", "sync"), [("fsync", True), ("process", False)])
def test_durability_sets_lmdb_sync(
    make_store: MakeStore, journal_dir: Path, durability: str, sync: bool
) -> None:
    store = make_store(journal_dir, durability=durability)
    flags = store._handle.env.flags()
    assert (flags["sync"], flags["metasync"]) == (sync, sync)
    assert store.durability == durability


APPEND_THEN_DIE = """
import os, signal, sys
from replay_engine._store.store import Store
from tests.helpers import effects, new_run
store = Store(sys.argv[1], durability="process")
new_run(store, "r1")
store.append("r1", *effects(range(50)))
print("appended", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_process_durability_survives_a_killed_process(
    make_store: MakeStore, journal_dir: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", APPEND_THEN_DIE, str(journal_dir)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout == "appended\n"
    store = make_store(journal_dir, durability="process")
    assert len(store.read_events("r1")) == 101


def test_one_environment_per_path(
    make_store: MakeStore, journal_dir: Path, tmp_path: Path
) -> None:
    first = make_store(journal_dir)
    link = tmp_path / "link"
    link.symlink_to(journal_dir)
    second = make_store(link)
    assert second._handle is first._handle
    with pytest.raises(ReplayEngineError, match="same durability"):
        make_store(journal_dir, durability="process")
    env = first._handle.env
    first.close()
    new_run(second, "r1")  # still open: the handle is shared
    second.close()
    with pytest.raises(Exception, match="closed"):
        env.info()


def test_no_use_after_fork(store: Store) -> None:
    new_run(store, "r1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            store.read_events("r1")
            code = 1
        except ReplayEngineError as exc:
            code = 0 if "after fork()" in str(exc) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(store.read_events("r1")) == 1  # the parent is unaffected


# -- map growth ------------------------------------------------------------------


def test_map_grows_far_past_its_initial_size(
    make_store: MakeStore, journal_dir: Path
) -> None:
    store = make_store(journal_dir, map_size=64 * 1024, durability="process")
    new_run(store, "r1")
    big_address, big_blobs = payload(os.urandom(3 << 20))  # one 3 MiB payload
    store.append("r1", [completed((0,), None)[0]], big_blobs)
    for batch in range(4):
        keys = range(batch * 500, (batch + 1) * 500)
        store.append("r1", *effects(keys))
    assert store._handle.env.info()["map_size"] >= 4 << 20
    head = store.require_run("r1").head
    store.close()

    seen = json.loads(run_child(DUMP_RUN, str(journal_dir), "r1"))
    assert seen["count"] == 1 + 1 + 4000
    assert seen["head"] == head.hex()
    reopened = make_store(journal_dir)
    assert reopened.get_blob(big_address) == big_blobs[big_address]


GROWN_ELSEWHERE = """
import sys
from replay_engine._store.store import Store
from tests.helpers import effects
store = Store(sys.argv[1], map_size=64 * 1024)
print("ready", flush=True)
sys.stdin.readline()
print(len(store.read_events("r1")), flush=True)
store.append("r1", *effects(range(5000, 5001)))
print(len(store.read_events("r1")), flush=True)
"""


def test_map_grown_by_another_process_is_adopted(
    make_store: MakeStore, journal_dir: Path
) -> None:
    store = make_store(journal_dir, map_size=64 * 1024, durability="process")
    new_run(store, "r1")
    child = subprocess.Popen(
        [sys.executable, "-c", GROWN_ELSEWHERE, str(journal_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "ready\n"
        store.append("r1", *effects(range(2000)))  # grows the map past 64 KiB
        assert store._handle.env.info()["map_size"] > 64 * 1024
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert out.split() == ["4001", "4003"]
    assert len(store.read_events("r1")) == 4003


GROW_WHILE_READING = """
import os, sys, threading
from replay_engine._store.store import Store
from tests.helpers import completed, effects, new_run, payload
store = Store(sys.argv[1], map_size=64 * 1024, durability="process")
new_run(store, "r1")
store.append("r1", *effects(range(100)))
stop, reading, errors = threading.Event(), threading.Event(), []
def reader():
    while not stop.is_set():
        try:
            store.read_events("r1")
        except Exception as exc:
            errors.append(repr(exc))
            return
        reading.set()
thread = threading.Thread(target=reader, daemon=True)
thread.start()
reading.wait()
for i in range(12):
    _, blobs = payload(os.urandom(128 * 1024 * (i + 1)))
    store.append("r1", [completed((1000 + i,), None)[0]], blobs)
stop.set()
thread.join(10)
print(errors[0] if errors else "ok")
"""


def test_map_growth_does_not_break_reads_in_other_threads(journal_dir: Path) -> None:
    try:
        out = run_child(GROW_WHILE_READING, str(journal_dir), timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung while the map grew under concurrent reads")
    assert out.strip() == "ok"


ABORT_WHILE_READING = """
import sys, threading, time
from replay_engine._store.store import Store
from replay_engine.errors import RunExistsError
from tests.helpers import effects, new_run, started
store = Store(sys.argv[1], durability="process")
new_run(store, "r1")
store.append("r1", *effects(range(100)))
stop, ready = threading.Event(), threading.Barrier(4)
def reader():
    ready.wait()
    while not stop.is_set():
        store.read_events("r1")
for _ in range(3):
    threading.Thread(target=reader, daemon=True).start()
ready.wait()
event, blobs = started()
for _ in range(20):
    try:
        store.create_run("r1", event, blobs)  # refused: its write txn is aborted
    except RunExistsError:
        pass
stop.set()
print("ok")
"""


def test_refused_write_does_not_stall_under_concurrent_reads(journal_dir: Path) -> None:
    try:
        out = run_child(ABORT_WHILE_READING, str(journal_dir), timeout=6)
    except subprocess.TimeoutExpired:
        pytest.fail("20 refused writes took over 6 s next to 3 reader threads")
    assert out.strip() == "ok"
