"""Helpers for the external-effect tests: journal snapshots and child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

import journal_format as jf
from replay_engine import Engine
from replay_engine._store.store import Store
from tests.helpers import child_env


def start_python(code: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """A child interpreter running ``code`` with ``sys.argv[1:] == args``."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**env),
    )


def wait_ready(children: list[subprocess.Popen[str]]) -> None:
    """Wait until every child printed its ``ready`` line."""
    for child in children:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "ready":
            out, err = child.communicate(timeout=30)
            raise AssertionError(f"child not ready: {line!r}{out}\n{err}")


def release(children: list[subprocess.Popen[str]]) -> None:
    """Unblock children waiting on their stdin, all at (nearly) once."""
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused write must leave as it was."""

    events: int
    head: bytes
    status: str
    digests: tuple[bytes, ...]
    blobs: int


def stored_record(engine: Engine, run_id: str) -> jf.RunRecord:
    """The run's record as stored (read through a ``Store`` of its own)."""
    store = Store(engine.path)
    try:
        return store.require_run(run_id)
    finally:
        store.close()


def snapshot(engine: Engine, run_id: str) -> Snapshot:
    store = Store(engine.path)
    try:
        record = store.require_run(run_id)
        blobs = len(store.raw_items(jf.DB_BLOBS))
    finally:
        store.close()
    return Snapshot(
        events=record.events,
        head=record.head,
        status=record.status,
        digests=tuple(s.digest for s in engine.events(run_id)),
        blobs=blobs,
    )


def outcomes_per_key(engine: Engine, run_id: str) -> Counter[str]:
    """How many outcome events (completed/failed) each key has."""
    out: Counter[str] = Counter()
    for stored in engine.events(run_id):
        event = stored.event
        if isinstance(event, jf.EffectCompleted | jf.EffectFailed):
            out[jf.key_bytes_to_text(event.key)] += 1
    return out


def journal_content(engine: Engine, run_id: str) -> Counter[tuple[Any, ...]]:
    """The journal as a multiset of (key, task, args address, result address).

    One item per effect (its request and its outcome joined), plus the run's
    own start and end; times, seqs, claims and waiting markers are left out:
    they legitimately differ between post orders.
    """
    requests: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, str] = {}
    items: Counter[tuple[Any, ...]] = Counter()
    for stored in engine.events(run_id):
        event = stored.event
        if isinstance(event, jf.EffectRequested):
            requests[jf.key_bytes_to_text(event.key)] = (event.task, event.args.hex())
        elif isinstance(event, jf.EffectCompleted):
            outcomes[jf.key_bytes_to_text(event.key)] = "ok:" + event.result.hex()
        elif isinstance(event, jf.EffectFailed):
            outcomes[jf.key_bytes_to_text(event.key)] = (
                f"err:{event.error.type}:{event.error.message}"
            )
        elif isinstance(event, jf.RunStarted):
            items[("", "run_started", event.process, event.inputs.hex())] += 1
        elif isinstance(event, jf.RunCompleted):
            items[("", "run_completed", "", event.result.hex())] += 1
        elif isinstance(event, jf.RunFailed):
            items[("", "run_failed", event.error.type, event.error.message)] += 1
    for key, (task, args) in requests.items():
        items[(key, task, args, outcomes.get(key))] += 1
    return items


def tags(engine: Engine, run_id: str) -> list[str]:
    return [jf.event_tag(s.event) for s in engine.events(run_id)]


def parse_json_output(text: str) -> Any:
    return json.loads(text)
