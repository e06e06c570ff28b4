"""Tasks that raise ``BaseException`` (issue 12, item 14).

A ``KeyboardInterrupt``/``SystemExit`` inside a sync task is not a task
failure: nothing is journaled for that attempt (no ``attempt_failed``, no
``failed``), and the tasks batched with it into one thread-pool job keep
their own outcomes: one that returned normally is completed, never failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adversarial import Done, cli
from tests.faults._support import HERE, side_lines

INTERRUPT_KEY = "0.3.0"  # branch 3 of fault_flows.interrupted
KINDS = ["KeyboardInterrupt", "SystemExit"]


def interrupted(
    tmp_path: Path, kind: str
) -> tuple[Done, dict[str, list[str]], set[str]]:
    """Run it; the CLI's result, event types by key, and the keys of the
    siblings that returned normally."""
    journal = tmp_path / "journal"
    side = tmp_path / "side"
    done = cli(
        journal,
        *("run", "fault_flows:interrupted", "--run-id", "r1"),
        *("--input", json.dumps({"kind": kind})),
        paths=[HERE],
        extra_env={"FAULT_SIDE": str(side)},
        timeout=20,
    )
    log = cli(journal, "log", "r1", "--json")
    assert log.returncode in (0, 1, 3), log.describe()
    by_key: dict[str, list[str]] = {}
    for event in json.loads(log.stdout):
        if event["key"] is not None:
            by_key.setdefault(event["key"], []).append(event["type"])
    returned = {f"0.{parts[1]}.0" for parts in side_lines(side) if parts[0] == "ok"}
    return done, by_key, returned


@pytest.mark.parametrize("kind", KINDS)
def test_interrupt_in_a_task_is_not_journaled(tmp_path: Path, kind: str) -> None:
    done, by_key, _ = interrupted(tmp_path, kind)
    assert done.returncode != 0, done.describe()
    assert "Traceback" not in done.output, done.describe()
    types = by_key.get(INTERRUPT_KEY, [])
    assert not {"failed", "attempt_failed"} & set(types), types


@pytest.mark.parametrize("kind", KINDS)
def test_batched_siblings_keep_their_own_outcomes(tmp_path: Path, kind: str) -> None:
    done, by_key, returned = interrupted(tmp_path, kind)
    siblings = {k: v for k, v in by_key.items() if k != INTERRUPT_KEY}
    failed = sorted(k for k, types in siblings.items() if "failed" in types)
    assert not failed, f"siblings journaled as failed: {failed}"
    lost = sorted(k for k in returned if "completed" not in siblings.get(k, []))
    assert not lost, f"siblings that returned normally are not completed: {lost}"
    assert "fault.ok" not in done.output, "the run error names a task that succeeded"
