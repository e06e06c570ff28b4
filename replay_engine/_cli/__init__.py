"""``replay-engine``: the command line, a thin click layer over :class:`Engine`.

Every command takes ``--json`` and then prints exactly one JSON document on
stdout (the shapes are documented in ``docs/cli-json.md``). Human output uses
rich: tables, and a live progress display while a run works (only when stdout
is a terminal).

Errors print one line ``error: <message>`` on stderr (a multi-line message,
such as a ``NonDeterminismError``'s, keeps its lines); with ``--json`` an
``{"error": {...}}`` document is printed on stdout as well.

Exit codes (CONTRACT): 0 done or completed, 1 the run failed or the journal is
damaged, 2 usage error (bad arguments, unknown run, unimportable process, bad
input JSON), 3 the run is waiting for external effects; 143 and 130 when
``run``/``resume``/``iterate`` were stopped by SIGTERM or SIGINT
(``stop_signals``).

The commands live in one module per theme, listed in ``COMMANDS`` below and
imported only when used (``lazy_group``): ``run_cmds`` (run, resume), ``inspect_cmds``
(status, runs, log, verify), ``worker_cmds`` (submit, worker), ``travel_cmds``
(replay, fork), ``export_cmds``
(export, timeline; the page is modelled by ``timeline_model`` and drawn by
``timeline_html``), ``debug_cmd`` (the interactive stepper), ``diff_cmd``
(diff; the comparison itself is ``run_diff``), ``effect_cmds``
(pending; it registers ``post_cmd`` and ``iterate_cmd`` too), ``retention_cmds``
(delete, gc, compact), ``check_cmd``, ``cancel_cmd`` (cancel), ``serve_cmd``
(serve: the HTTP server of ``replay_engine._serve``) and ``stats_cmd`` (stats).
``common`` holds what they share, ``event_rows`` the JSON form of an event,
``snapshot_views`` the rich snapshot views, ``waiting_views`` what ``runs``
shows of a waiting run.

The CLI is built on the public API only: ``replay_engine`` and its public
modules (``errors``, ``check``), plus ``journal_format`` to decode events.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .. import __version__
from . import isolation as _isolation

# Start-up (issue 16): only ``core`` here, not ``common`` (rich, msgspec,
# journal_format), ``log_setup`` (logging, rich) or ``stop_signals``; the
# commands and the group's callback import them when they run.
from .core import (
    DEFAULT_JOURNAL,
    ENV_JOURNAL,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WAITING,
    CliError,
    CliUsageError,
    Options,
)
from .lazy_group import LazyCommand, LazyGroup

__all__ = [
    "COMMANDS",
    "DEFAULT_JOURNAL",
    "ENV_JOURNAL",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_WAITING",
    "CliError",
    "CliUsageError",
    "cli",
    "main",
]


# Every command, in the order ``--help`` lists them: its name, the
# ``module:attribute`` of ``_cli`` that defines it (imported only when the
# command is used, see ``lazy_group``), and the short help ``--help`` shows
# (the first sentence of its docstring; tests/cli/test_lazy_cli.py checks
# they agree). A new command is one more row here.
COMMANDS: tuple[LazyCommand, ...] = (
    (
        "run",
        "run_cmds:run_command",
        "Start a run of MODULE:FUNC and execute it until it ends or waits.",
    ),
    (
        "resume",
        "run_cmds:resume_command",
        "Re-execute RUN_ID from the start, serving completed effects from the journal.",
    ),
    (
        "submit",
        "worker_cmds:submit_command",
        "Record a queued run of MODULE:FUNC and return; a worker starts it.",
    ),
    (
        "worker",
        "worker_cmds:worker_command",
        "Recover, wake and start runs of the PROCESSes (MODULE:FUNC) until stopped.",
    ),
    (
        "status",
        "inspect_cmds:status_command",
        "Show the stored state of RUN_ID (executes nothing).",
    ),
    (
        "runs",
        "inspect_cmds:runs_command",
        "List the runs in the journal, newest first (--tree: families).",
    ),
    (
        "log",
        "log_cmd:log_command",
        "Show the events of RUN_ID: seq, type, key, task and hashes.",
    ),
    (
        "verify",
        "inspect_cmds:verify_command",
        "Recompute every digest and chain link of RUN_ID (or of the whole journal).",
    ),
    (
        "replay",
        "travel_cmds:replay_command",
        "Show RUN_ID as it stood after its first N events; dispatches nothing.",
    ),
    (
        "fork",
        "travel_cmds:fork_command",
        "Branch RUN_ID at event N: a new run sharing its first N events.",
    ),
    (
        "export",
        "export_cmds:export_command",
        "Export the events of RUN_ID, one JSON object per event.",
    ),
    (
        "timeline",
        "export_cmds:timeline_command",
        "Write a self-contained HTML Gantt chart of RUN_ID's calls.",
    ),
    (
        "debug",
        "debug_cmd:debug_command",
        "Step through RUN_ID's events interactively; dispatches nothing.",
    ),
    (
        "diff",
        "diff_cmd:diff_command",
        "Where RUN_A and RUN_B first differ, side by side, then a summary.",
    ),
    (
        "compat",
        "compat_cmd:compat_command",
        "Replay the stored runs of PROCESS (MODULE:FUNC) against the code as it"
        " is now.",
    ),
    (
        "pending",
        "effect_cmds:pending_command",
        "List the external effects RUN_ID waits for, or claim some with --claim.",
    ),
    (
        "post",
        "post_cmd:post_command",
        "Post the outcome of the external effect at KEY of RUN_ID, or a signal.",
    ),
    (
        "iterate",
        "iterate_cmd:iterate_command",
        "One turn of the orchestration loop for RUN_ID; prints JSON.",
    ),
    (
        "delete",
        "retention_cmds:delete_command",
        "Delete RUN_ID: its record, events, index entries and checkpoint.",
    ),
    (
        "gc",
        "retention_cmds:gc_command",
        "Delete finished runs last updated before WHEN, then every unused blob.",
    ),
    (
        "compact",
        "retention_cmds:compact_command",
        "Rewrite the journal without its free pages (space left by deleted runs).",
    ),
    (
        "check",
        "check_cmd:check_command",
        "Flag what breaks determinism in a process and what it calls in its module.",
    ),
    (
        "cancel",
        "cancel_cmd:cancel_command",
        "Cancel RUN_ID: terminal status `cancelled`, recorded with --reason.",
    ),
    (
        "serve",
        "serve_cmd:serve_command",
        "Serve the HTTP JSON API and the web console on the journal until stopped.",
    ),
    (
        "stats",
        "stats_cmd:stats_command",
        "Count the journal's runs by status, its events, payloads and bytes.",
    ),
)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--journal",
    "journal",
    metavar="DIR",
    envvar=ENV_JOURNAL,
    default=DEFAULT_JOURNAL,
    show_default=True,
    show_envvar=True,
    help="The journal directory (an LMDB environment).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log more on stderr: -v the engine's INFO records, -vv DEBUG.",
)
@click.option("-q", "--quiet", count=True, help="Log only errors on stderr.")
# The version the package states (not importlib.metadata's lookup, which
# scans every installed distribution: tens of ms of start-up).
@click.version_option(version=__version__, prog_name="replay-engine")
@click.pass_context
def cli(ctx: click.Context, journal: str, verbose: int, quiet: int) -> None:
    """Run, resume and inspect durable processes recorded in a journal.

    Exit codes: 0 done (or completed), 1 the run failed or the journal is
    damaged, 2 usage error, 3 the run is waiting for external effects.
    """
    from . import log_setup

    log_setup.configure(verbose, quiet)
    ctx.obj = Options(journal=journal)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``replay-engine`` console script."""
    _isolation.enable()  # only the real process may fork (see isolation)
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="replay-engine"
        )
    except SystemExit as exc:
        # Only a command that executes imports stop_signals: if none did, no
        # signal stopped a run.
        stop_signals = sys.modules.get(f"{__name__}.stop_signals")
        stopped = stop_signals is not None and stop_signals.stopped_by_signal()
        if stopped and stop_signals is not None and isinstance(exc.code, int):
            stop_signals.exit_now(exc.code)  # abandoned tasks are not waited for
        raise
    raise SystemExit(0)  # pragma: no cover - click always exits in standalone mode
