"""The probe before ``post`` reads what post reads, and no stored payload (issue 16).

A command that changes a run first has a forked child read what it will read
(``_cli/isolation.py``), so that a damaged page kills the child, not the
writer. ``post`` validates the key's events and appends: it reads no stored
payload, so its probe reads the run's record and events only; a resume's
probe reads every payload too (10,000 stored payloads were about 13% of a
post's CPU on a run of 20,000 events).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine
from replay_engine._cli import isolation
from tests.cli.conftest import Invoke


def _payload_reads(
    journal: Path, run_id: str, monkeypatch: pytest.MonkeyPatch, *, payloads: bool
) -> tuple[int, int]:
    """How many payloads and event reads the probe's reading makes (the real ones)."""
    counts = {"payload": 0, "events": 0}
    real_payload, real_events = Engine.payload, Engine.events

    def payload(self: Engine, *args: Any, **kwargs: Any) -> Any:
        counts["payload"] += 1
        return real_payload(self, *args, **kwargs)

    def events(self: Engine, *args: Any, **kwargs: Any) -> Any:
        counts["events"] += 1
        return real_events(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "payload", payload)
    monkeypatch.setattr(Engine, "events", events)
    with Engine(journal, read_only=True) as engine:
        isolation._read_run(engine, run_id, payloads=payloads)
    return counts["payload"], counts["events"]


def test_posts_probe_reads_events_but_no_payload(
    invoke: Invoke, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inputs long enough to be stored as a payload, not inline in the event.
    diff = json.dumps({"diff": "+" * 200})
    invoke("run", "cli_flows:waits", "--run-id", "w", "--input", diff, code=3)
    # What a resume's probe reads: the events and the payloads they name
    # (the inputs, the review's arguments, the task's arguments and result).
    with_payloads, _ = _payload_reads(journal, "w", monkeypatch, payloads=True)
    # What post's reads: every event, and only what ``status`` reads itself.
    without, event_reads = _payload_reads(journal, "w", monkeypatch, payloads=False)
    assert event_reads == 1
    assert without + 2 <= with_payloads, (without, with_payloads)
