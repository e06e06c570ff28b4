"""``verify`` sees more (issue 12, item 10).

Structural damage with every seal intact: a run with no run record, orphan
events or index entries, a record naming another run, a key with two
outcomes, two terminal events, and LMDB meta pages that disagree (a flipped
bit in the newest meta page makes LMDB fall back to the older one: the last
commit silently rolled back).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

import journal_format as jf
from tests.adversarial import cli, effect, raw, started, write_run
from tests.faults._support import build_waiting, copy_of


@pytest.fixture
def journal(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """``r1``: waiting, then its agent's result posted (the newest commit)."""
    journal = copy_of(tmp_path_factory, tmp_path, "waiting", build_waiting)
    return journal


def run_events(journal: Path, run_id: str) -> int:
    with raw(journal) as (env, dbs), env.begin() as txn:
        record = jf.decode_run_record(
            jf.unseal(txn.get(run_id.encode(), db=dbs[jf.DB_RUNS]))[1]
        )
    return record.events


def damage_no_record(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    write_run(journal, "norec", [event], blobs, write_record=False)
    return "norec"


def damage_orphan_events(journal: Path) -> str:
    seq = run_events(journal, "r1") + 3
    body = jf.LogLine(key=jf.encode_key((9,)), ordinal=0, message="orphan")
    envelope = jf.Envelope(
        v=jf.FORMAT_VERSION, seq=seq, prev=b"\0" * 32, at=time.time_ns(), event=body
    )
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(
            jf.event_key(jf.run_prefix("r1"), seq),
            jf.seal(jf.encode_record(envelope)),
            db=dbs[jf.DB_EVENTS],
        )
    return "r1"


def damage_orphan_events_of_no_run(journal: Path) -> str:
    damage = jf.run_prefix("ghost")
    envelope = jf.Envelope(
        v=jf.FORMAT_VERSION,
        seq=0,
        prev=jf.genesis_digest("ghost"),
        at=time.time_ns(),
        event=started("fault_flows:waiter", 1)[0],
    )
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(
            jf.event_key(damage, 0),
            jf.seal(jf.encode_record(envelope)),
            db=dbs[jf.DB_EVENTS],
        )
    return "ghost"


def damage_orphan_index(journal: Path) -> str:
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(
            jf.run_prefix("r1") + jf.encode_key((7,)),
            jf.pack_seq(999),
            db=dbs[jf.DB_KEYS],
        )
    return "r1"


def damage_orphan_index_of_no_run(journal: Path) -> str:
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(
            jf.run_prefix("phantom") + jf.encode_key((0,)),
            jf.pack_seq(1),
            db=dbs[jf.DB_KEYS],
        )
    return "phantom"


def damage_wrong_id(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    write_run(journal, "alias", [event], blobs, record_run_id="other")
    return "alias"


def damage_two_outcomes(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    pair, more = effect((0,), "fault.a", 0)
    second = jf.EffectCompleted(key=jf.encode_key((0,)), result=jf.encode_payload(1))
    write_run(journal, "dup", [event, *pair, second], blobs | more, status="running")
    return "dup"


def damage_two_terminals(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    done = jf.RunCompleted(result=jf.encode_payload(1))
    failed = jf.RunFailed(error=jf.ErrorInfo(type="X", message="y"))
    write_run(journal, "twice", [event, done, failed], blobs, status="completed")
    return "twice"


def damage_cancelled_then_completed(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    cancelled = jf.RunCancelled(reason="stop")
    done = jf.RunCompleted(result=jf.encode_payload(1))
    write_run(journal, "revived", [event, cancelled, done], blobs, status="completed")
    return "revived"


def damage_timed_out_then_cancelled(journal: Path) -> str:
    event, blobs = started("fault_flows:waiter", {})
    late = jf.RunTimedOut(deadline_ns=1)
    cancelled = jf.RunCancelled()
    write_run(journal, "ended2", [event, late, cancelled], blobs, status="cancelled")
    return "ended2"


def damage_active_missing(journal: Path) -> str:
    """r1 waits, but the worker's index lost it: no worker would wake it."""
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        assert txn.delete(b"r1", db=dbs[jf.DB_ACTIVE])
    return "r1"


def damage_active_stale(journal: Path) -> str:
    """The index says r1 is queued on a queue; its record says waiting."""
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(b"r1", jf.pack_active("queued", "q", 1), db=dbs[jf.DB_ACTIVE])
    return "r1"


def damage_active_orphan(journal: Path) -> str:
    """The index names a run that does not exist."""
    with raw(journal) as (env, dbs), env.begin(write=True) as txn:
        txn.put(b"nobody", jf.pack_active("running", None, 1), db=dbs[jf.DB_ACTIVE])
    return "nobody"


DAMAGE = {
    "no-record": damage_no_record,
    "orphan-events": damage_orphan_events,
    "events-of-no-run": damage_orphan_events_of_no_run,
    "orphan-index": damage_orphan_index,
    "index-of-no-run": damage_orphan_index_of_no_run,
    "wrong-run-id": damage_wrong_id,
    "two-outcomes": damage_two_outcomes,
    "two-terminals": damage_two_terminals,
    "active-missing": damage_active_missing,
    "active-stale": damage_active_stale,
    "active-orphan": damage_active_orphan,
    "cancelled-then-completed": damage_cancelled_then_completed,
    "timed-out-then-cancelled": damage_timed_out_then_cancelled,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_reports_structural_damage(journal: Path, damage: str) -> None:
    run_id = DAMAGE[damage](journal)
    done = cli(journal, "verify", "--json")
    assert done.returncode == 1, done.describe()
    assert "Traceback" not in done.output, done.describe()
    assert run_id in done.stdout, done.describe()


@pytest.mark.parametrize("damage", ["no-record", "events-of-no-run", "index-of-no-run"])
def test_verify_of_the_run_reports_records_without_a_run_record(
    journal: Path, damage: str
) -> None:
    run_id = DAMAGE[damage](journal)
    done = cli(journal, "verify", run_id, "--json")
    assert done.returncode == 1, done.describe()
    assert "RunNotFoundError" not in done.stdout, done.describe()
    assert run_id in done.stdout and '"ok": false' in done.stdout, done.describe()


def test_verify_of_a_run_that_is_nowhere_is_unknown(journal: Path) -> None:
    done = cli(journal, "verify", "nowhere", "--json")
    assert done.returncode == 2, done.describe()
    assert "RunNotFoundError" in done.stdout, done.describe()


# -- LMDB meta pages -------------------------------------------------------------

PAGE = 4096
TXNID = 16 + 4 + 4 + 8 + 8 + 2 * 48 + 8  # page header, then MDB_meta up to mm_txnid


def newest_meta_page(data: bytes) -> int:
    ids = [struct.unpack_from("<Q", data, page * PAGE + TXNID)[0] for page in (0, 1)]
    return 0 if ids[0] > ids[1] else 1


def test_verify_reports_meta_pages_that_disagree(journal: Path) -> None:
    posted = cli(journal, "post", "r1", "1", "--result", '"go"')
    assert posted.returncode == 0, posted.describe()
    path = journal / "data.mdb"
    data = bytearray(path.read_bytes())
    page = newest_meta_page(bytes(data))
    offset = page * PAGE + TXNID
    (txnid,) = struct.unpack_from("<Q", data, offset)
    # Clear one set bit (worth 2 or more) of the newest txnid: it drops below
    # the older meta's, and LMDB opens the journal as it was one commit ago.
    bit = next(b for b in range(1, 64) if txnid >> b & 1)
    struct.pack_into("<Q", data, offset, txnid ^ (1 << bit))
    path.write_bytes(bytes(data))
    rolled_back = cli(journal, "status", "r1", "--json")
    assert '"waiting"' in rolled_back.stdout, "the crafting did not roll back the post"
    done = cli(journal, "verify", "--json")
    assert done.returncode == 1, done.describe()
    assert "Traceback" not in done.output, done.describe()
    assert "meta" in done.stdout.lower(), done.describe()
