"""``verify``: recompute every digest and chain link, and name what is damaged.

Unlike the read path, which stops at the first damaged record, verification
goes on past damage so one report lists every problem, each with its run, seq
and key. An event whose bytes were altered is named itself (its stored digest
no longer matches), not the event after it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import journal_format as jf

from .files import DATA_FILE, meta_problems
from .lmdb_pages import page_problems
from .store import Store
from .verify_structure import (
    EventChecks,
    Problem,
    active_index_problems,
    index_problems,
    orphan_problems,
    record_id_problem,
    safe_key as _safe_key,
)

__all__ = ["Problem", "VerifyReport", "damaged_pages_report", "verify"]


@dataclass
class VerifyReport:
    """What ``verify`` found: ``ok`` when nothing is damaged."""

    runs: int = 0
    events: int = 0
    blobs: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every digest, chain link and index entry checks."""
        return not self.problems


def _addresses_of(event: jf.Event) -> list[bytes]:
    return [ref for ref in _refs_of(event) if not jf.ref_is_inline(ref)]


def _refs_of(event: jf.Event) -> list[bytes]:
    if isinstance(event, jf.RunStarted):
        return [event.inputs]
    if isinstance(event, jf.EffectRequested):
        return [event.args]
    if isinstance(event, jf.EffectCompleted | jf.RunCompleted):
        return [event.result]
    if isinstance(event, jf.SignalReceived):
        return [event.payload]
    return []


def damaged_pages_report(path: str) -> VerifyReport | None:
    """The report for a journal whose reachable LMDB pages are damaged, or None.

    LMDB aborts the process (``SIGABRT``) reading a damaged branch or leaf
    page, so when any is found nothing else is read: the report names the
    pages and says the rest was not checked. Call it before opening the
    journal (opening reads the main tree); a missing or linked ``data.mdb`` is
    left to the open to refuse.
    """
    return _damaged_pages(path, None)


def _damaged_pages(path: str, pinned: int | None) -> VerifyReport | None:
    file = os.path.join(path, DATA_FILE)
    if os.path.islink(file) or not os.path.isfile(file):
        return None
    problems = page_problems(path, pinned=pinned)
    if not problems:
        return None
    report = VerifyReport()
    report.problems += [Problem(text) for text in meta_problems(path)]
    report.problems += [Problem(text) for text in problems]
    report.problems.append(
        Problem(
            "the runs, events and blobs were not read: LMDB would abort the"
            " process on the damaged pages. Restore the journal from a backup"
        )
    )
    return report


def verify(store: Store, run_id: str | None = None) -> VerifyReport:
    """Check one run (or every run, and every blob) and report all damage."""
    # Walked under a read transaction: other processes' commits meanwhile
    # cannot reuse the pages walked (a false "damaged" report otherwise).
    damaged = store.pinned(lambda txnid: _damaged_pages(store.real_path, txnid))
    if damaged is not None:
        return damaged
    report = VerifyReport()
    # A damaged meta page rolls the whole journal back, whichever run is asked.
    report.problems += [Problem(text) for text in meta_problems(store.real_path)]
    if run_id is not None and store.get_run(run_id) is None:
        # Records without their run record: what the whole-journal check calls
        # orphans. With none, there is no such run (the caller's error).
        report.problems += orphan_problems(store, (), only=run_id)
        return report
    blob_ok = _verify_blobs(store, report) if run_id is None else {}
    run_ids = [run_id] if run_id is not None else _run_ids(store)
    for rid in run_ids:
        _verify_run(store, rid, report, blob_ok)
    if run_id is None:
        # Records under a prefix no run record owns: never reached above.
        report.problems += orphan_problems(store, run_ids)
        report.problems += active_index_problems(store)
    return report


def _run_ids(store: Store) -> list[str]:
    return [k.decode(errors="replace") for k, _ in store.raw_items(jf.DB_RUNS)]


def _verify_blobs(store: Store, report: VerifyReport) -> dict[bytes, bool]:
    status: dict[bytes, bool] = {}
    for address, data in store.raw_items(jf.DB_BLOBS):
        report.blobs += 1
        ok = jf.address_of(data) == address
        status[address] = ok
        if not ok:
            report.problems.append(
                Problem(f"blob {address.hex()} does not match its content address")
            )
    return status


def _verify_run(
    store: Store, run_id: str, report: VerifyReport, blob_ok: dict[bytes, bool]
) -> None:
    report.runs += 1
    prefix = jf.run_prefix(run_id)
    found, record = _load_record(store, run_id, prefix, report)
    if not found:
        return
    checks = EventChecks(run_id)
    # The digests the next event may link to: two after a damaged record,
    # since the damage may be in its stored digest or in its data.
    prevs = {jf.genesis_digest(run_id)}
    expected_seq = 0
    keyed: dict[int, bytes] = {}
    damaged: set[int] = set()
    # Dense, in seq order, for checking the checkpoint (None: damaged).
    bodies: list[jf.Event | None] = []
    digests: list[bytes] = []
    referenced: list[tuple[int, str | None, bytes]] = []
    for k, v in _run_events(store, prefix, run_id, report):
        seq = jf.seq_of_event_key(prefix, k)
        report.events += 1
        if seq != expected_seq:
            report.problems.append(
                Problem(
                    f"events {expected_seq}..{seq - 1} are missing",
                    run_id=run_id,
                    seq=seq,
                )
            )
        expected_seq = seq + 1
        stored_digest = v[: jf.ADDRESS_SIZE]
        digests.append(stored_digest)
        try:
            _, data = jf.unseal(v)
            envelope = jf.decode_envelope(data)
        except jf.FormatError as exc:
            report.problems.append(Problem(str(exc), run_id=run_id, seq=seq))
            damaged.add(seq)
            bodies.append(None)
            prevs = {stored_digest, jf.address_of(v[jf.ADDRESS_SIZE :])}
            continue
        key_bytes = getattr(envelope.event, "key", None)
        key_text = _safe_key(key_bytes) if key_bytes is not None else None
        report.problems += _envelope_problems(run_id, seq, envelope, prevs, key_text)
        prevs = {stored_digest}
        checks.see(seq, envelope.event, key_text)
        bodies.append(envelope.event)
        if key_bytes is not None:
            keyed[seq] = key_bytes
        referenced.extend((seq, key_text, a) for a in _addresses_of(envelope.event))
        for ref in _refs_of(envelope.event):
            if jf.ref_is_inline(ref):
                _check_decodes(ref, "its inline payload", run_id, seq, key_text, report)

    report.problems += checks.problems
    if record is not None:
        _verify_record_end(run_id, record, expected_seq, prevs, report)
    _verify_references(store, run_id, referenced, blob_ok, report)
    report.problems += index_problems(store, run_id, keyed, damaged)
    if len(bodies) == expected_seq:  # dense: no event is missing
        _verify_checkpoint(store, run_id, bodies, digests, report)


def _load_record(
    store: Store, run_id: str, prefix: bytes, report: VerifyReport
) -> tuple[bool, jf.RunRecord | None]:
    """The run's record (None: damaged), and whether one is stored at all."""
    raw = dict(store.raw_items(jf.DB_RUNS, run_id.encode())).get(run_id.encode())
    if raw is None:
        stored = store.raw_items(jf.DB_EVENTS, prefix)
        what = (
            f"{len(stored)} events are stored for this run, but it has no run record"
            if stored
            else "no such run"
        )
        report.problems.append(Problem(what, run_id=run_id))
        return False, None
    record = _decode_record(run_id, raw, report)
    if record is not None and (wrong := record_id_problem(run_id, record)):
        report.problems.append(wrong)
    return True, record


def _envelope_problems(
    run_id: str,
    seq: int,
    envelope: jf.Envelope,
    prevs: set[bytes],
    key_text: str | None,
) -> list[Problem]:
    """What is wrong with an intact event: its key, its seq, its chain link."""
    problems = []
    if key_text is not None and key_text.startswith("<bytes"):
        problems.append(
            Problem(
                "malformed invocation key bytes", run_id=run_id, seq=seq, key=key_text
            )
        )
    if envelope.seq != seq:
        problems.append(
            Problem(
                f"stored under seq {seq} but says seq {envelope.seq}",
                run_id=run_id,
                seq=seq,
                key=key_text,
            )
        )
    if envelope.prev not in prevs:
        problems.append(
            Problem(
                "chain broken: link to the previous event does not match",
                run_id=run_id,
                seq=seq,
                key=key_text,
            )
        )
    return problems


def _decode_record(
    run_id: str, raw: bytes, report: VerifyReport
) -> jf.RunRecord | None:
    try:
        return jf.decode_run_record(jf.unseal(raw)[1])
    except jf.FormatError as exc:
        report.problems.append(Problem(f"run record damaged: {exc}", run_id=run_id))
        return None


def _verify_record_end(
    run_id: str,
    record: jf.RunRecord,
    count: int,
    heads: set[bytes],
    report: VerifyReport,
) -> None:
    """The run record must count the events and name the chain's last digest."""
    if record.events != count:
        report.problems.append(
            Problem(
                f"run record counts {record.events} events, the journal holds {count}",
                run_id=run_id,
            )
        )
    elif record.head not in heads:
        report.problems.append(
            Problem("run head does not commit to the stored history", run_id=run_id)
        )


def _verify_checkpoint(
    store: Store,
    run_id: str,
    bodies: list[jf.Event | None],
    digests: list[bytes],
    report: VerifyReport,
) -> None:
    """The checkpoint must be intact, on the chain and equal to its fold (JF-106)."""
    raw = store.checkpoint_of(run_id)
    if raw is None:
        return
    try:
        checkpoint = jf.decode_checkpoint(jf.unseal(raw)[1])
    except jf.FormatError as exc:
        report.problems.append(
            Problem(f"checkpoint damaged: {exc}. {_DERIVED}", run_id=run_id)
        )
        return
    covered = checkpoint.events
    mismatch = jf.checkpoint_mismatch(
        checkpoint, run_id, lambda seq: digests[seq] if seq < len(digests) else None
    )
    if mismatch is not None:
        problem = f"checkpoint {mismatch}"
    else:
        events = bodies[:covered]
        if any(event is None for event in events):
            return  # the damaged events are reported; the fold cannot be checked
        index = jf.CallIndex()
        try:
            index.fold(0, events)  # type: ignore[arg-type]
        except jf.OrphanOutcome:
            return  # reported by the read path; the fold is undefined
        index.head = checkpoint.head
        if index.to_checkpoint(run_id, checkpoint.v) == checkpoint:
            return
        problem = (
            f"checkpoint of the first {covered} events differs from what those"
            " events say"
        )
    report.problems.append(Problem(f"{problem}. {_DERIVED}", run_id=run_id))


_DERIVED = (
    "A checkpoint is derived data: resumes ignore this one and read the events,"
    " and the next checkpoint replaces it"
)


def _run_events(
    store: Store, prefix: bytes, run_id: str, report: VerifyReport
) -> list[tuple[bytes, bytes]]:
    # Reuse the raw cursor so damaged records are still listed.
    events = []
    for k, v in store.raw_items(jf.DB_EVENTS, prefix):
        if len(k) == len(prefix) + 8:
            events.append((k, v))
        else:
            report.problems.append(
                Problem(
                    f"a stray record in `events` under this run's prefix (key"
                    f" {k.hex()!r} is not prefix + 8-byte seq)",
                    run_id=run_id,
                )
            )
    return events


def _verify_references(
    store: Store,
    run_id: str,
    referenced: list[tuple[int, str | None, bytes]],
    blob_ok: dict[bytes, bool],
    report: VerifyReport,
) -> None:
    unknown = {r[2] for r in referenced if r[2] not in blob_ok}
    if unknown:
        # One get per referenced blob (a single-run verify did not scan them all).
        found = store.raw_blobs(unknown)
        present = {a: jf.address_of(d) == a for a, d in found.items() if d is not None}
        blob_ok = {**blob_ok, **present}
    decoded: dict[bytes, str | None] = {}
    for seq, key_text, address in referenced:
        ok = blob_ok.get(address)
        if ok and address not in decoded:
            data = store.raw_blobs([address]).get(address)
            decoded[address] = _decode_problem(data) if data is not None else None
        if ok and decoded.get(address):
            report.problems.append(
                Problem(
                    f"refers to blob {address.hex()}, which does not decode:"
                    f" {decoded[address]}",
                    run_id=run_id,
                    seq=seq,
                    key=key_text,
                )
            )
        if ok is None:
            report.problems.append(
                Problem(
                    f"refers to blob {address.hex()}, which is missing",
                    run_id=run_id,
                    seq=seq,
                    key=key_text,
                )
            )
        elif not ok:
            report.problems.append(
                Problem(
                    f"refers to blob {address.hex()}, which is damaged",
                    run_id=run_id,
                    seq=seq,
                    key=key_text,
                )
            )


def _decode_problem(data: bytes) -> str | None:
    """Why ``data`` is not a payload (hostile bytes inside a valid seal)."""
    try:
        jf.decode_payload(data)
    except jf.FormatError as exc:
        return str(exc)
    return None


def _check_decodes(
    data: bytes,
    what: str,
    run_id: str,
    seq: int,
    key_text: str | None,
    report: VerifyReport,
) -> None:
    problem = _decode_problem(data)
    if problem is not None:
        report.problems.append(
            Problem(
                f"{what} does not decode: {problem}",
                run_id=run_id,
                seq=seq,
                key=key_text,
            )
        )
