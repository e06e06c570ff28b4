"""The CLI starts fast (issue 16): commands and the engine are imported on use.

The start-up budget itself is measured by ``bench/bench_cli.py``, not here;
these tests pin what makes it possible: ``import replay_engine`` and
``replay-engine --help`` import neither the engine nor asyncio, and the
command table's short help is each command's own.
"""

from __future__ import annotations

import subprocess
import sys

import click

from replay_engine._cli import COMMANDS, cli

from .conftest import Invoke, child_env

HEAVY = ("asyncio", "replay_engine._api", "replay_engine._run", "replay_engine._check")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
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
