"""Every inspection command on a damaged journal: exit 1, one ``error:`` line.

The journal is written by the real engine; then bytes of one event record are
edited in ``data.mdb`` (LMDB keeps no checksums, so only our seals notice).
Nothing may come out as a traceback, and ``--json`` gives the error document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from replay_engine import Engine, external, task
from tests.adversarial import cli

MARK = b"damaged.marked_task"


@task(name=MARK.decode())
def _marked(i: int) -> int:
    return i + 1


@external(kind="agent")
def _ask(what: str) -> Any:
    """Answered from outside."""


async def _process(inputs: Any, ctx: Any) -> Any:
    first = await ctx.task(_marked, {"i": 1})
    ctx.log("halfway", first=first)
    return await ctx.task(_ask, {"what": "go"})


def _build(journal: Path) -> None:
    with Engine(str(journal)) as engine:
        assert engine.run(_process, {}, run_id="r1").status == "waiting"


def _damage(journal: Path, how: str) -> None:
    """Edit the bytes of the event that requested the marked task.

    Every copy of it: LMDB copies pages on write, so freed pages may still
    hold an older copy beside the live one.
    """
    data = journal / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(MARK)
    assert at > 0, "the task name is not in data.mdb"
    while at >= 0:
        if how == "letter":  # still well-formed: only the seal can tell
            raw[at + 3] ^= 0x01
        else:  # a byte MessagePack never uses, before the name
            raw[at - 2] = 0xC1
        at = raw.find(MARK, at + 1)
    data.write_bytes(bytes(raw))


COMMANDS = [
    ["status", "r1"],
    ["log", "r1"],
    ["runs"],
    ["export", "r1", "--format", "jsonl"],
    ["timeline", "r1", "-o", "-"],
    ["verify"],
    ["verify", "r1"],
    ["pending", "r1"],
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    journal = tmp_path_factory.mktemp("damaged") / "journal"
    _build(journal)
    return journal


@pytest.mark.parametrize("how", ["letter", "bad-byte"])
@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
@pytest.mark.parametrize("command", COMMANDS, ids="-".join)
def test_inspection_of_a_damaged_journal_is_a_clean_error(
    template: Path, tmp_path: Path, command: list[str], how: str, as_json: bool
) -> None:
    journal = tmp_path / "journal"
    journal.mkdir(mode=0o700)
    for name in ("data.mdb", "lock.mdb"):
        source = template / name
        if source.exists():
            (journal / name).write_bytes(source.read_bytes())
            (journal / name).chmod(0o600)
    _damage(journal, how)
    if as_json and command[0] == "timeline":
        command = ["timeline", "r1", "-o", str(tmp_path / "t.html")]
    done = cli(journal, *command, *(["--json"] if as_json else []))
    assert done.returncode == 1, done.describe()
    assert "Traceback" not in done.output, done.describe()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.describe()
    # The run is named: in the error line, or in the problems verify lists.
    assert "r1" in (done.stdout if command == ["verify"] else errors[0])
    if as_json:
        document = json.loads(done.stdout)
        if command[0] == "verify":
            assert document["ok"] is False
            assert [p["run_id"] for p in document["problems"]] == ["r1"]
        else:
            assert document["error"]["type"] == "JournalCorruptError", done.describe()
            assert document["error"]["run_id"] == "r1"
