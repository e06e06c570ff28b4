"""Helpers for engine and crash tests: reading journals, crashing children.

A crash child is a fresh interpreter that runs or resumes a process and
SIGKILLs itself right after the journal first reaches ``kill_at`` events (it
wraps ``Store.append`` and ``Store.create_run``: call the original, then
count). Nothing about the engine is mocked: the child writes a real LMDB
journal and dies for real.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import journal_format as jf
from replay_engine import Engine
from tests.helpers import child_env

from .flows import SIDE_ENV

CHILD = r"""
import json, os, signal, sys
from replay_engine import Engine
from replay_engine._run import process_ref as _process_ref
from replay_engine._store import store as _store

mode, journal, run_id, ref, inputs, durability, kill_at = sys.argv[1:8]
kill_at = int(kill_at)

if kill_at > 0:
    original_append = _store.Store.append
    original_create = _store.Store.create_run

    def append(self, *args, **kwargs):
        result = original_append(self, *args, **kwargs)
        if result.first_seq + result.count >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def create_run(self, *args, **kwargs):
        original_create(self, *args, **kwargs)
        if 1 >= kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    _store.Store.append = append
    _store.Store.create_run = create_run

engine = Engine(journal, durability=durability)
if mode == "run":
    run = engine.run(_process_ref.load(ref), json.loads(inputs), run_id=run_id)
else:
    run = engine.resume(run_id)
print(json.dumps({"status": run.status, "result": run.result}))
"""


def start_child(
    mode: str,
    journal: Path,
    run_id: str,
    *,
    ref: str = "",
    inputs: Any = None,
    durability: str = "fsync",
    kill_at: int = 0,
    side: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start a child that runs (``mode="run"``) or resumes a process."""
    extra = dict(env or {})
    if side is not None:
        extra[SIDE_ENV] = str(side)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            mode,
            str(journal),
            run_id,
            ref,
            json.dumps(inputs),
            durability,
            str(kill_at),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(**extra),
    )


def finish_child(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def crash_child(mode: str, journal: Path, run_id: str, **kwargs: Any) -> int:
    """Run a child that must die of SIGKILL; return its pid."""
    proc = start_child(mode, journal, run_id, **kwargs)
    code, output = finish_child(proc)
    assert code == -signal.SIGKILL, f"child was not killed (exit {code}):\n{output}"
    return proc.pid


# -- reading journals ---------------------------------------------------------------


def key_of(event: Any) -> str:
    key = getattr(event, "key", None)
    return "" if key is None else jf.key_bytes_to_text(key)


def keys_of(engine: Engine, run_id: str, tag: str = "requested") -> list[str]:
    """Keys of the run's events of one type, in journal order."""
    return [
        key_of(s.event) for s in engine.events(run_id) if jf.event_tag(s.event) == tag
    ]


def tags(engine: Engine, run_id: str) -> list[str]:
    return [jf.event_tag(s.event) for s in engine.events(run_id)]


def requested_tasks(engine: Engine, run_id: str) -> dict[str, str]:
    """Key -> task name of every effect requested."""
    return {
        key_of(s.event): s.event.task
        for s in engine.events(run_id)
        if isinstance(s.event, jf.EffectRequested)
    }


def describe(event: Any) -> tuple[Any, ...]:
    """An event's content, without what legitimately varies (times, tracebacks)."""
    tag = jf.event_tag(event)
    key = key_of(event)
    if isinstance(event, jf.RunStarted):
        return ("", tag, event.process, event.inputs.hex())
    if isinstance(event, jf.EffectRequested):
        return (key, tag, event.task, event.kind, event.args.hex())
    if isinstance(event, jf.EffectCompleted):
        return (key, tag, event.result.hex())
    if isinstance(event, jf.EffectFailed):
        return (key, tag, event.error.type, event.error.message, event.attempts)
    if isinstance(event, jf.AttemptFailed):
        return (key, tag, event.attempt, event.error.type, event.error.message)
    if isinstance(event, jf.LogLine):
        return (key, tag, event.ordinal, event.message, json.dumps(event.fields))
    if isinstance(event, jf.ValueRecorded):
        value = None if event.kind == "now" else repr(event.value)
        return (key, tag, event.kind, value)
    if isinstance(event, jf.TimerStarted | jf.TimerFired):
        return (key, tag)
    if isinstance(event, jf.RunCompleted):
        return ("", tag, event.result.hex())
    if isinstance(event, jf.RunFailed):
        return ("", tag, event.error.type, event.error.message)
    if isinstance(event, jf.RunWaiting):
        return ("", tag, tuple(jf.key_bytes_to_text(k) for k in event.pending))
    return ("", tag, repr(event))


def content(engine: Engine, run_id: str) -> list[tuple[Any, ...]]:
    """The journal as a sorted multiset of event contents (order-free)."""
    return sorted((describe(s.event) for s in engine.events(run_id)), key=repr)


def per_key(engine: Engine, run_id: str) -> dict[str, Counter[tuple[Any, ...]]]:
    out: dict[str, Counter[tuple[Any, ...]]] = {}
    for s in engine.events(run_id):
        item = describe(s.event)
        out.setdefault(item[0], Counter())[item] += 1
    return out


def settled_keys(events: list[Any]) -> set[str]:
    """Keys whose effect completed or failed for good among ``events``."""
    return {
        key_of(s.event)
        for s in events
        if isinstance(s.event, jf.EffectCompleted | jf.EffectFailed)
    }


def requested_keys(events: list[Any]) -> set[str]:
    return {key_of(s.event) for s in events if isinstance(s.event, jf.EffectRequested)}
