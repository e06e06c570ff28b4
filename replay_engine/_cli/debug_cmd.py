"""``debug``: an interactive stepper over a run's events.

The stepper stands on one event at a time; what it shows is the run as it
stood *after* that event, taken with :meth:`Engine.replay` (so nothing is
dispatched or written). Commands are read one per line:

====================  ==================================================
``n`` / ``next``       the next event (an empty line does the same)
``p`` / ``prev``       the previous event
``g N`` / ``goto N``   the event with seq N
``k KEY`` / ``key``    the first event at invocation key KEY
``s KEY`` / ``show``   a call's args and result (as of this event)
``t`` / ``tree``       the whole snapshot view (as ``replay`` prints it)
``h`` / ``help``       this list
``q`` / ``quit``       leave (so does end of input)
====================  ==================================================

With ``--json`` no prompt is printed and one JSON document, listing every
command and what it showed, is printed when the input ends.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.text import Text

import journal_format as jf

from .. import Engine, Snapshot
from .common import (
    PROCESS_OPTION,
    CliError,
    emit_json,
    json_option,
    make_console,
    open_engine,
    plain,
    reporting_errors,
)
from .event_rows import detail, event_document
from .snapshot_views import (
    STATUS_STYLES,
    counts,
    frontier_lines,
    snapshot_view,
    summary_line,
)
from .travel_cmds import replay_process

PROMPT = "debug> "

HELP = (
    "n/next  p/prev  g N (seq N)  k KEY (first event at KEY)  s KEY (show a call)"
    "  t/tree  h/help  q/quit"
)


class StepError(Exception):
    """A command that cannot be carried out; the stepper says why and goes on."""


class Stepper:
    """The position in a run's events and the snapshots taken so far."""

    def __init__(
        self, engine: Engine, run_id: str, process: Callable[..., Any]
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.process = process
        self.events = engine.events(run_id)
        if not self.events:
            raise StepError(f"run {run_id!r} has no events")
        tasks: dict[str, str] = {}
        self.docs: list[dict[str, Any]] = []
        for stored in self.events:
            if isinstance(stored.event, jf.EffectRequested):
                tasks[jf.key_bytes_to_text(stored.event.key)] = stored.event.task
            self.docs.append(event_document(stored, tasks))
        self.seq = 0
        self._snapshots: dict[int, Snapshot] = {}

    @property
    def last(self) -> int:
        return len(self.events) - 1

    def snapshot(self) -> Snapshot:
        """The run after the current event."""
        if self.seq not in self._snapshots:
            self._snapshots[self.seq] = self.engine.replay(
                self.run_id, self.seq + 1, process=self.process
            )
        return self._snapshots[self.seq]

    def go(self, seq: int) -> None:
        if not 0 <= seq <= self.last:
            raise StepError(f"seq {seq} is outside 0..{self.last}")
        self.seq = seq

    def first_at(self, key: str) -> int:
        try:
            wanted = jf.format_key(jf.parse_key(key))
        except jf.FormatError as exc:
            raise StepError(f"{key!r}: {exc}") from None
        for doc in self.docs:
            if doc["key"] == wanted:
                return int(doc["seq"])
        raise StepError(f"no event at key {wanted} in run {self.run_id!r}")

    def call(self, key: str) -> dict[str, Any]:
        """A call's state as of the current event (args, result or error)."""
        try:
            wanted = jf.format_key(jf.parse_key(key))
        except jf.FormatError as exc:
            raise StepError(f"{key!r}: {exc}") from None
        snap = self.snapshot()
        for call in snap.calls:
            if call.key == wanted:
                doc: dict[str, Any] = plain(asdict(call))
                if call.error is not None:
                    doc["error"] = {
                        "type": call.error.type,
                        "message": call.error.message,
                    }
                return doc
        for frontier in snap.frontier:
            if frontier.key == wanted:
                return {**plain(asdict(frontier)), "status": "frontier"}
        raise StepError(f"no call at key {wanted} in run {self.run_id!r}")

    def step_document(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {
            "seq": self.seq,
            "until": snap.until,
            "event": self.docs[self.seq],
            "counts": counts(snap),
            "logs": len(snap.logs),
            "frontier": [f.key for f in snap.frontier],
            "process_status": snap.process_status,
        }

    def execute(self, line: str) -> tuple[str, Any]:
        """Carry out one command: ``(what to show, its argument)``."""
        words = line.split()
        name = words[0].lower() if words else "n"
        arg = words[1] if len(words) > 1 else None
        if name in ("q", "quit", "exit"):
            return "quit", None
        if name in ("h", "help", "?"):
            return "help", HELP
        if name in ("t", "tree"):
            return "tree", self.snapshot()
        if name in ("s", "show"):
            return "call", self.call(_required(arg, "s KEY"))
        if name in ("n", "next"):
            if self.seq >= self.last:
                raise StepError(f"already at the last event (seq {self.last})")
            self.go(self.seq + 1)
        elif name in ("p", "prev"):
            if self.seq == 0:
                raise StepError("already at the first event (seq 0)")
            self.go(self.seq - 1)
        elif name in ("g", "goto"):
            text = _required(arg, "g N")
            try:
                self.go(int(text))
            except ValueError:
                raise StepError(f"{text!r} is not a seq number") from None
        elif name in ("k", "key"):
            self.go(self.first_at(_required(arg, "k KEY")))
        else:
            raise StepError(f"unknown command {name!r}; {HELP}")
        return "step", self.step_document()


def _required(arg: str | None, usage: str) -> str:
    if arg is None:
        raise StepError(f"usage: {usage}")
    return arg


def _print_step(console: Console, stepper: Stepper) -> None:
    doc = stepper.docs[stepper.seq]
    head = Text()
    head.append(f"[seq {stepper.seq}/{stepper.last}] ", style="bold")
    head.append(doc["type"], style="cyan")
    if doc["key"] is not None:
        head.append(f"  key {doc['key']}", style="bold")
    if doc["task"]:
        head.append(f"  {doc['task']}")
    extra = detail(doc)
    if extra:
        head.append(f"  {extra}", style="dim")
    console.print(head)
    snap = stepper.snapshot()
    console.print(summary_line(snap))
    for line in frontier_lines(snap):
        console.print(Text.assemble(("  frontier ", "dim"), line))


def _print_call(console: Console, doc: dict[str, Any]) -> None:
    status = str(doc.get("status", ""))
    head = Text.assemble(
        (str(doc["key"]), "bold"),
        f"  {doc['task']}  ",
        (status, STATUS_STYLES.get(status, "")),
    )
    console.print(head)
    for name in ("args", "result", "error", "attempts_failed", "site", "reason"):
        if name not in doc or (name != "args" and doc[name] in (None, 0)):
            continue
        if name == "result" and status != "done":
            continue
        text = json.dumps(doc[name], ensure_ascii=False, indent=2)
        console.print(Text.assemble((f"  {name}: ", "dim"), text))


def _read_line(interactive: bool) -> str | None:
    if interactive:
        click.echo(PROMPT, nl=False)
        sys.stdout.flush()
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\r\n")


@click.command("debug")
@click.argument("run_id")
@PROCESS_OPTION
@json_option
@click.pass_context
@reporting_errors
def debug_command(
    ctx: click.Context, run_id: str, process_ref: str | None, as_json: bool
) -> None:
    """Step through RUN_ID's events interactively; dispatches nothing.

    Each step shows the event (seq, type, key, task) and the run as it stood
    after it. Commands: n/next, p/prev, g N (jump to seq N), k KEY (first
    event at KEY), s KEY (a call's args and result), t/tree, h/help, q/quit.
    """
    with open_engine(ctx) as engine:
        fn = replay_process(engine, run_id, process_ref)
        try:
            stepper = Stepper(engine, run_id, fn)
        except StepError as exc:
            raise CliError(str(exc)) from None
        if as_json:
            emit_json(_session_json(stepper))
            return
        _session(stepper, make_console())


def _session(stepper: Stepper, console: Console) -> None:
    console.print(
        Text.assemble(
            ("debugging run ", "dim"),
            (stepper.run_id, "bold"),
            (f"  ({len(stepper.events)} events; h for help)", "dim"),
        )
    )
    _print_step(console, stepper)
    while (line := _read_line(True)) is not None:
        try:
            what, value = stepper.execute(line)
        except StepError as exc:
            console.print(Text(str(exc), style="red"))
            continue
        if what == "quit":
            return
        if what == "help":
            console.print(HELP, markup=False)
        elif what == "tree":
            console.print(snapshot_view(value))
        elif what == "call":
            _print_call(console, value)
        else:
            _print_step(console, stepper)
    click.echo()


def _session_json(stepper: Stepper) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"command": None, "step": stepper.step_document()}]
    while (line := _read_line(False)) is not None:
        try:
            what, value = stepper.execute(line)
        except StepError as exc:
            steps.append({"command": line, "error": str(exc)})
            continue
        if what == "quit":
            break
        if what == "tree":
            value = value.to_dict()
        steps.append({"command": line, what: value})
    return {"run_id": stepper.run_id, "events": len(stepper.events), "steps": steps}


def register(group: click.Group) -> None:
    """Add ``debug``."""
    group.add_command(debug_command)
