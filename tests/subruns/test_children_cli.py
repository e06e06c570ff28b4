"""``runs --tree`` and ``status`` of a child run: the CLI in-process, a real journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay_engine import Engine
from tests.helpers import cli_invoker
from tests.subruns import child_flows as flows


@pytest.fixture
def journal(journal_dir: Path) -> Path:
    engine = Engine(journal_dir, durability="process")
    engine.run(flows.grand, {}, run_id="g")
    engine.run(flows.fan, {"n": 2}, run_id="f")
    engine.run(flows.leaf, {"name": "solo", "n": 1}, run_id="solo")
    engine.close()
    return journal_dir


def test_runs_tree_json_nests_children_under_parents(journal: Path) -> None:
    invoke = cli_invoker(journal)
    roots = json.loads(invoke("runs", "--tree", "--json", code=0).stdout)
    assert [r["run_id"] for r in roots] == ["solo", "f", "g"]
    by_id = {r["run_id"]: r for r in roots}
    assert [c["run_id"] for c in by_id["f"]["children"]] == ["f--0.0.0", "f--0.1.0"]
    [middle] = by_id["g"]["children"]
    assert (middle["run_id"], middle["child_of"], middle["child_key"]) == (
        "g--0",
        "g",
        "0",
    )
    [leaf] = middle["children"]
    assert (leaf["run_id"], leaf["child_of"], leaf["children"]) == (
        "g--0--0",
        "g--0",
        [],
    )
    assert by_id["solo"]["children"] == [] and by_id["solo"]["child_of"] is None
    # Flat `runs` keeps its shape, with the link on every row.
    flat = json.loads(invoke("runs", "--json", code=0).stdout)
    assert len(flat) == 7 and all("children" not in r for r in flat)
    assert {r["run_id"]: r["child_of"] for r in flat}["g--0--0"] == "g--0"


def test_runs_tree_prints_families(journal: Path) -> None:
    out = cli_invoker(journal)("runs", "--tree", code=0).stdout
    lines = out.splitlines()
    g = next(i for i, line in enumerate(lines) if line.startswith("g "))
    assert "g--0 " in lines[g + 1] and "(at key 0)" in lines[g + 1]
    assert "g--0--0" in lines[g + 2]
    assert lines[g + 2].index("g--0--0") > lines[g + 1].index("g--0")  # deeper


def test_a_filtered_out_parent_makes_its_child_a_root(journal: Path) -> None:
    engine = Engine(journal, durability="process")
    engine.run(flows.waits_on_child, {}, run_id="w")
    engine.close()
    roots = json.loads(
        cli_invoker(journal)("runs", "--tree", "--status", "waiting", "--json").stdout
    )
    assert [r["run_id"] for r in roots] == ["w"]
    assert [c["run_id"] for c in roots[0]["children"]] == ["w--0"]


def test_status_of_a_child_names_its_parent(journal: Path) -> None:
    invoke = cli_invoker(journal)
    doc = json.loads(invoke("status", "g--0--0", "--json", code=0).stdout)
    assert (doc["child_of"], doc["child_key"]) == ("g--0", "0")
    assert json.loads(invoke("status", "g", "--json").stdout)["child_of"] is None
    table = invoke("status", "g--0--0").stdout
    assert "child of" in table and "g--0 at key 0" in table


def test_status_of_a_waiting_parent_names_the_child_it_waits_on(journal: Path) -> None:
    engine = Engine(journal, durability="process")
    engine.run(flows.waits_on_child, {}, run_id="w")
    assert engine.status("w").waiting_on == ("w--0",)
    assert engine.status("w--0").waiting_on == ()  # waits on an agent, not a child
    engine.close()
    invoke = cli_invoker(journal)
    doc = json.loads(invoke("status", "w", "--json", code=0).stdout)
    assert (doc["pending"], doc["waiting_on"]) == (["0"], ["w--0"])
    assert "child runs w--0" in invoke("status", "w").stdout
    assert json.loads(invoke("status", "g", "--json").stdout)["waiting_on"] == []
