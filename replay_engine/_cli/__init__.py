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

The commands live in one module per theme, each adding its commands to the
group with ``register``: ``run_cmds`` (run, resume), ``inspect_cmds``
(status, runs, log, verify), ``worker_cmds`` (submit, worker), ``travel_cmds``
(replay, fork), ``export_cmds``
(export, timeline; the page is modelled by ``timeline_model`` and drawn by
``timeline_html``), ``debug_cmd`` (the interactive stepper), ``diff_cmd``
(diff; the comparison itself is ``run_diff``), ``effect_cmds``
(pending; it registers ``post_cmd`` and ``iterate_cmd`` too), ``retention_cmds``
(delete, gc, compact), ``check_cmd`` and ``cancel_cmd`` (cancel), ``stats_cmd``
(stats).
``common`` holds what they share, ``event_rows`` the JSON form of an event,
``snapshot_views`` the rich snapshot views, ``waiting_views`` what ``runs``
shows of a waiting run.

The CLI is built on the public API only: ``replay_engine`` and its public
modules (``errors``, ``check``), plus ``journal_format`` to decode events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import click

from . import (
    cancel_cmd as _cancel,
    check_cmd as _check,
    compat_cmd as _compat,
    debug_cmd as _debug,
    diff_cmd as _diff,
    effect_cmds as _external,
    export_cmds as _export,
    inspect_cmds as _inspect,
    isolation as _isolation,
    retention_cmds as _retention,
    run_cmds as _run,
    serve_cmd as _serve,
    stats_cmd as _stats,
    stop_signals as _stop_signals,
    travel_cmds as _timetravel,
    worker_cmds as _worker,
)
from .common import (
    DEFAULT_JOURNAL,
    ENV_JOURNAL,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WAITING,
    CliError,
    CliUsageError,
    Options,
    OrderedGroup,
)

__all__ = [
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


@click.group(
    cls=OrderedGroup,
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
@click.version_option(package_name="replay-engine", prog_name="replay-engine")
@click.pass_context
def cli(ctx: click.Context, journal: str) -> None:
    """Run, resume and inspect durable processes recorded in a journal.

    Exit codes: 0 done (or completed), 1 the run failed or the journal is
    damaged, 2 usage error, 3 the run is waiting for external effects.
    """
    ctx.obj = Options(journal=journal)


for _module in (
    _run,
    _worker,
    _inspect,
    _timetravel,
    _export,
    _debug,
    _diff,
    _compat,
    _external,
    _retention,
    _check,
    _cancel,
    _serve,
    _stats,
):
    _module.register(cli)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``replay-engine`` console script."""
    _isolation.enable()  # only the real process may fork (see isolation)
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="replay-engine"
        )
    except SystemExit as exc:
        if _stop_signals.stopped_by_signal() and isinstance(exc.code, int):
            _stop_signals.exit_now(exc.code)  # abandoned tasks are not waited for
        raise
    raise SystemExit(0)  # pragma: no cover - click always exits in standalone mode
