"""End to end, through the CLI alone: run -> iterate -> post ... -> completed.

The process (``ext_flows.pipeline``) has an in-process task, a
``parallel.all`` of three agent tasks, a ``parallel.map`` of external reviews,
another in-process task and a breakpoint. An orchestrator that knows nothing
but the CLI's JSON drives it: it iterates, and answers whatever is pending in
a random order, a random number at a time, sometimes claiming work first and
posting as the claiming worker, sometimes iterating with nothing new.

Whatever the order, the final result and the journal's content (a multiset of
``(key, task, args address, outcome)``) are the same, the journal verifies,
and each in-process task ran exactly once.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result
from hypothesis import HealthCheck, given, settings, strategies as st

from .ext_flows import read_side

FLOW = "tests.external.ext_flows:pipeline"
INPUTS = {"feature": "checkout"}
EXPECTED = {
    "parts": [{"part": p, "diff": f"+{p}"} for p in ("api", "ui", "docs")],
    "reviews": [{"file": f, "ok": True} for f in ("a.py", "b.py", "c.py")],
    "n": 6,
    "approved": True,
    "response": {"by": "release-manager"},
}


def answer(effect: dict[str, Any]) -> list[str]:
    """The post arguments answering one pending effect (fixed per effect)."""
    if effect["kind"] == "breakpoint":
        return ["--approve", "--response", json.dumps({"by": "release-manager"})]
    if effect["task"] == "ext.implement":
        part = effect["args"]["part"]
        return ["--result", json.dumps({"part": part, "diff": f"+{part}"})]
    assert effect["task"] == "ext.review", effect
    return ["--result", json.dumps({"file": effect["args"]["file"], "ok": True})]


Cli = Callable[..., tuple[int, str]]


def orchestrate(cli: Cli, run_id: str, rng: random.Random) -> dict[str, Any]:
    """Drive the run to completion with the CLI; returns the final iterate doc."""
    code, out = cli(
        "run", FLOW, "--input", json.dumps(INPUTS), "--run-id", run_id, "--json"
    )
    assert code == 3, out
    for _ in range(60):
        code, out = cli("iterate", run_id)
        doc: dict[str, Any] = json.loads(out)
        if code == 0:
            assert doc["status"] == "completed"
            return doc
        assert code == 3 and doc["status"] == "waiting", out
        pending = list(doc["pending"])
        assert pending, doc
        if rng.random() < 0.15:  # an iterate with nothing new changes nothing
            events = json.loads(cli("status", run_id, "--json")[1])["events"]
            code, out = cli("iterate", run_id)
            assert code == 3 and json.loads(out)["pending"] == doc["pending"], out
            assert json.loads(cli("status", run_id, "--json")[1])["events"] == events
        rng.shuffle(pending)
        for effect in pending[: rng.randint(1, len(pending))]:
            by: list[str] = []
            if rng.random() < 0.3:
                worker = f"worker-{rng.randint(1, 3)}"
                claim = ["--claim", worker, "--lease", "300", "--max", "10"]
                code, out = cli("pending", run_id, *claim, "--json")
                assert code == 0, out
                claimed = {
                    c["key"]: c["claimed_by"] for c in json.loads(out)["claimed"]
                }
                current = {
                    p["key"]: p["claimed_by"]
                    for p in json.loads(cli("pending", run_id, "--json")[1])["pending"]
                }
                owner = claimed.get(effect["key"], current.get(effect["key"]))
                if owner is not None:
                    by = ["--by", owner]
            code, out = cli(
                "post", run_id, effect["key"], *answer(effect), *by, "--json"
            )
            assert code == 0, out
            if rng.random() < 0.2:  # a duplicate post by a racing agent
                code, out = cli(
                    "post", run_id, effect["key"], *answer(effect), "--json"
                )
                assert (
                    code == 1
                    and json.loads(out)["error"]["reason"] == "already_completed"
                )
    raise AssertionError("the run did not complete")


def journal_content(cli: Cli, run_id: str) -> Counter[tuple[Any, ...]]:
    """(key, task, args address, outcome) per effect, from ``log --json``."""
    code, out = cli("log", run_id, "--json")
    assert code == 0, out
    requests: dict[str, tuple[str, str]] = {}
    outcomes: dict[str, str] = {}
    items: Counter[tuple[Any, ...]] = Counter()
    for ev in json.loads(out):
        fields = ev["fields"]
        if ev["type"] == "requested":
            requests[ev["key"]] = (ev["task"], fields["args"])
        elif ev["type"] == "completed":
            outcomes[ev["key"]] = "ok:" + fields["result"]
        elif ev["type"] == "failed":
            outcomes[ev["key"]] = "err:" + json.dumps(fields["error"], sort_keys=True)
        elif ev["type"] in ("run_started", "run_completed"):
            what = fields.get("inputs") or fields.get("result")
            items[("", ev["type"], fields.get("process"), what)] += 1
    for key, (task, args) in requests.items():
        items[(key, task, args, outcomes.get(key))] += 1
    return items


def check_run(cli: Cli, run_id: str, doc: dict[str, Any], side: Path) -> Counter[Any]:
    assert doc["result"] == EXPECTED
    code, out = cli("verify", run_id, "--json")
    assert code == 0 and json.loads(out)["ok"], out
    code, out = cli("status", run_id, "--json")
    status = json.loads(out)
    assert status["status"] == "completed" and status["result"] == EXPECTED
    # A completed run is terminal: iterate again changes nothing.
    code, out = cli("iterate", run_id)
    again = json.loads(out)
    assert code == 0 and again["result"] == EXPECTED and again["already_completed"]
    assert json.loads(cli("status", run_id, "--json")[1])["events"] == status["events"]
    ran = Counter(x["what"] for x in read_side(side) if x["run"] == run_id)
    assert ran == {"prepare": 1, "combine": 1}
    return journal_content(cli, run_id)


def subprocess_cli(run: Callable[..., Any]) -> Cli:
    def call(*args: str) -> tuple[int, str]:
        proc = run(*args)
        return proc.returncode, proc.stdout

    return call


def test_cli_subprocesses_random_orders_same_outcome(cli: Any, side: Path) -> None:
    call = subprocess_cli(cli)
    contents = []
    for seed in (1, 2):  # real subprocesses are slow; the property test adds more
        run_id = f"e2e-{seed}"
        doc = orchestrate(call, run_id, random.Random(seed))
        contents.append(check_run(call, run_id, doc, side))
    assert contents[0] == contents[1]
    assert len(contents[0]) == 2 + 1 + 3 + 3 + 1 + 1  # start, end, 9 effects


def test_cli_random_orders_property(invoke: Callable[..., Result], side: Path) -> None:
    def call(*args: str) -> tuple[int, str]:
        result = invoke(*args)
        return result.exit_code, result.stdout

    reference: list[Counter[Any]] = []
    counter = iter(range(10_000))

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(seed=st.integers(min_value=0, max_value=2**32 - 1))
    def check(seed: int) -> None:
        run_id = f"prop-{next(counter)}"
        doc = orchestrate(call, run_id, random.Random(seed))
        content = check_run(call, run_id, doc, side)
        if not reference:
            reference.append(content)
        assert content == reference[0]

    check()
