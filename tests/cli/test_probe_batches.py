"""A resume's probe reads the run in batches, not as one list (issue 17).

The probe child of a writing command reads every event and payload of the
run (``_cli/isolation.py``). It read them into one list of decoded events:
the probe of a 1M-event ``resume`` peaked at 844 MB. It now reads
``PROBE_BATCH`` events at a time: still every event and every stored
payload, never more than a batch held.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import journal_format as jf
from replay_engine import Engine, task
from replay_engine._cli import isolation

RUN = "pb"


@task(executor="inline", name="pb.echo")
def echo(text: str) -> str:
    return text


async def long_texts(inputs: dict[str, int], ctx: Any) -> Any:
    """Args and results long enough to be stored payloads, not inline."""
    out = []
    for i in range(inputs["n"]):
        out.append(await ctx.task(echo, {"text": f"{i:04d}" + "x" * 300}))
    return len(out)


def test_the_probe_reads_every_event_and_payload_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal"
    with Engine(journal, durability="process") as engine:
        assert engine.run(long_texts, {"n": 40}, run_id=RUN).result == 40
        events = engine.events(RUN)
    stored = {
        ref
        for s in events
        for ref in isolation._refs_of(s.event)
        if not jf.ref_is_inline(ref)
    }
    assert len(stored) >= 80  # 40 args and 40 results at least
    monkeypatch.setattr(isolation, "PROBE_BATCH", 8)
    sizes: list[int] = []
    read: set[bytes] = set()
    real_events, real_payload = Engine.events, Engine.payload

    def counted_events(self: Engine, *args: Any, **kwargs: Any) -> Any:
        chunk = real_events(self, *args, **kwargs)
        sizes.append(len(chunk))
        return chunk

    def counted_payload(self: Engine, ref: bytes, *args: Any, **kwargs: Any) -> Any:
        read.add(ref)
        return real_payload(self, ref, *args, **kwargs)

    monkeypatch.setattr(Engine, "events", counted_events)
    monkeypatch.setattr(Engine, "payload", counted_payload)
    with Engine(journal, read_only=True) as engine:
        isolation._read_run(engine, RUN, payloads=True)
    assert sum(sizes) == len(events) > 80
    assert max(sizes) <= 8, sizes
    assert read == stored
