"""The CLI starts fast (issue 16): commands and the engine are imported on use.

The start-up budget itself is measured by ``bench/bench_cli.py``, not here;
these tests pin what makes it possible: ``import replay_engine`` and
``replay-engine --help`` import neither the engine nor asyncio, and the
command table's short help is each command's own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from replay_engine._cli import COMMANDS, cli

from .conftest import Invoke, child_env

HEAVY = ("asyncio", "replay_engine._api", "replay_engine._run", "replay_engine._check")


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the test's environment); its output."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    proc = _python(probe)
    return set(proc.stdout.split())


def test_import_replay_engine_imports_no_engine() -> None:
    loaded = _modules_after("import replay_engine")
    assert not [m for m in loaded if m.startswith(HEAVY)]


def test_public_names_still_import() -> None:
    loaded = _modules_after(
        "from replay_engine import Engine, task, TaskFailed\n"
        "import replay_engine\nassert replay_engine.Engine is Engine\n"
        "assert 'Engine' in dir(replay_engine)"
    )
    assert "replay_engine._api.engine" in loaded


def test_help_imports_no_command_module_and_no_engine() -> None:
    loaded = _modules_after(
        "from replay_engine._cli import cli\n"
        "try:\n    cli.main(['--help'], prog_name='replay-engine')\n"
        "except SystemExit:\n    pass"
    )
    assert not [m for m in loaded if m.startswith(HEAVY)]
    modules = {target.partition(":")[0] for _, target, _ in COMMANDS}
    assert not {f"replay_engine._cli.{m}" for m in modules} & loaded


# What ``--help`` and ``--version`` need is click and ``_cli/core``: not the
# console and tables (rich), the journal's codec (journal_format, msgspec),
# logging, nor what only a forked reading child uses (ctypes).
NOT_FOR_HELP = (
    "rich",
    "journal_format",
    "msgspec",
    "lmdb",
    "blake3",
    "logging",
    "ctypes",
    "replay_engine._cli.common",
    "replay_engine._cli.log_setup",
    "replay_engine._cli.stop_signals",
    "replay_engine._cli.safe_text",
)


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_only_click_and_core(option: str) -> None:
    loaded = _modules_after(
        "from replay_engine._cli import main\n"
        f"try:\n    main([{option!r}])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )
    assert "replay_engine._cli.core" in loaded
    heavy = sorted(m for m in loaded if m.startswith(NOT_FOR_HELP))
    assert not heavy, heavy


def test_the_table_is_each_commands_own() -> None:
    ctx = cli.make_context("replay-engine", ["--help"], resilient_parsing=True)
    assert [name for name, _, _ in COMMANDS] == cli.list_commands(ctx)
    for name, _, short in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command)
        assert command.name == name
        assert command.get_short_help_str(limit=10_000) == short, name


def test_version_is_the_installed_distributions(invoke: Invoke) -> None:
    from importlib.metadata import version

    out = invoke("--version", code=0).stdout
    assert out.strip() == f"replay-engine, version {version('replay-engine')}"


# What the reading commands (and post) must not pay for at start-up: the
# runtime and its asyncio, the dispatcher, the static checker, the timeline
# and debugger, the worker.
NOT_FOR_READING = (
    "asyncio",
    "concurrent.futures.thread",
    "socket",
    "secrets",
    "replay_engine._run.runtime",
    "replay_engine._run.dispatch",
    "replay_engine._run.context",
    "replay_engine._run.settle",
    "replay_engine._run.journal",
    "replay_engine._run.process_ref",
    "replay_engine._run.tasks",
    "replay_engine._api.worker",
    "replay_engine._store.verify",
    "replay_engine._store.compact",
    "replay_engine._store.retention",
    "replay_engine._check",
    "replay_engine.check",
    "replay_engine._cli.timeline_html",
    "replay_engine._cli.debug_cmd",
    "replay_engine._cli.check_cmd",
    # Dataclasses of methods these commands do not call (issue 16, s16c):
    # replay's snapshot, check_compatible's and statistics' results, the
    # journal's usage (the code-change comparison of run/resume is in
    # _run.process_ref, above).
    "replay_engine._api.snapshots",
    "replay_engine._api.compat_result",
    "replay_engine._api.statistics_result",
    "replay_engine._store.usage",
)


def _command_modules(journal: Path, *args: str) -> tuple[set[str], str]:
    """Run one command in-process in a fresh interpreter; its modules and stdout."""
    argv = ["--journal", str(journal), *args]
    code = (
        "import sys\n"
        "from replay_engine._cli import cli\n"
        "try:\n"
        f"    code = cli.main({argv!r}, prog_name='rpe', standalone_mode=False)\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "sys.stdout.flush()\n"
        "print('\\n--modules--', code)\n"
        "print('\\n'.join(sys.modules))\n"
    )
    proc = _python(code)
    out, _, modules = proc.stdout.partition("\n--modules--")
    exit_code, _, names = modules.partition("\n")
    return set(names.split()), f"{out}\nexit {exit_code.strip()}\n{proc.stderr}"


@pytest.mark.parametrize(
    "args",
    [
        ("status", "w"),
        ("status", "w", "--json"),
        ("runs",),
        ("runs", "--json"),
        ("pending", "w"),
        ("pending", "w", "--json"),
        ("post", "w", "1", "--result", '{"ok": true}'),
        ("post", "w", "--event", "go", "--error", "no", "--json"),
    ],
    ids=" ".join,
)
def test_reading_commands_and_post_import_no_runtime(
    args: tuple[str, ...], invoke: Invoke, journal: Path
) -> None:
    invoke("run", "cli_flows:waits", "--run-id", "w", code=3)
    loaded, out = _command_modules(journal, *args)
    # The command did its job, so these are the modules of a real run of it.
    assert "replay_engine._api.engine" in loaded, out
    shows = {"status": "waiting", "runs": "waiting", "pending": "review", "post": "5"}
    assert shows[args[0]] in out, out
    heavy = sorted(m for m in loaded if m.startswith(NOT_FOR_READING))
    assert not heavy, f"{args}: {heavy}\n{out}"


FORKS = """
import gc, sys
from replay_engine._cli import isolation
isolation.enable()
journal = sys.argv[1]
isolation.probe_run(journal, "w")
isolation.read_in_child(journal, lambda exc: 1)
print("reading child", gc.get_freeze_count(), flush=True)
"""


def test_the_reading_child_starts_with_a_frozen_heap(
    invoke: Invoke, journal: Path
) -> None:
    """The fork copies no heap pages for the collector (``gc.freeze``)."""
    invoke("run", "cli_flows:waits", "--run-id", "w", code=3)
    proc = _python(FORKS, str(journal))
    lines = dict(line.rsplit(" ", 1) for line in proc.stdout.splitlines())
    assert int(lines["reading child"]) > 1000, proc.stdout


# What prints only JSON or plain lines does not load rich (imported when a
# record is logged or a table printed), the timeline (export's neighbour) or
# pathlib: the first line of log and export comes sooner, and --json starts
# faster (issue 16).
NOT_FOR_STREAMING = ("rich", "pathlib", "replay_engine._cli.timeline")


@pytest.mark.parametrize(
    "args",
    [
        ("log", "w", "--format", "lines"),
        ("log", "w", "--format", "jsonl"),
        ("export", "w"),
        ("log", "w", "--json"),
        ("status", "w", "--json"),
        ("runs", "--json"),
        ("pending", "w", "--json"),
        ("post", "w", "1", "--result", '{"ok": true}', "--json"),
    ],
    ids=" ".join,
)
def test_streaming_and_json_commands_import_no_rich(
    args: tuple[str, ...], invoke: Invoke, journal: Path
) -> None:
    invoke("run", "cli_flows:waits", "--run-id", "w", code=3)
    loaded, out = _command_modules(journal, *args)
    assert '"w"' in out or " w " in out or "requested" in out, out
    heavy = sorted(m for m in loaded if m.startswith(NOT_FOR_STREAMING))
    assert not heavy, f"{args}: {heavy}\n{out}"


def test_what_the_imports_made_is_frozen(invoke: Invoke, journal: Path) -> None:
    """A command's module and the engine are imported without collector passes
    and then frozen, so no later pass walks them."""
    invoke("run", "cli_flows:waits", "--run-id", "w", code=3)
    code = (
        "import gc\nfrom replay_engine._cli import cli\n"
        f"argv = ['--journal', {str(journal)!r}, 'status', 'w', '--json']\n"
        "try:\n    cli.main(argv, prog_name='rpe')\n"
        "except SystemExit:\n    pass\n"
        "print('frozen', gc.get_freeze_count(), gc.isenabled())\n"
    )
    proc = _python(code)
    _, count, enabled = proc.stdout.splitlines()[-1].split()
    assert int(count) > 10_000 and enabled == "True", proc.stdout
