"""``serve``: the HTTP API and web console on the journal (the ``serve`` extra).

Starlette and uvicorn are imported only when the server starts (through
``replay_engine.serve``, whose module imports neither), so the CLI works
without the extra, and ``serve`` without it says which extra to install.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from .. import NotAJournalError, ReplayEngineError, serve
from .common import journal_path, json_option, reporting_errors, usage_error
from .safe_text import echo, printable

ENV_TOKEN = "REPLAY_ENGINE_TOKEN"


def server_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--host``, ``--port``, ``--token``: for ``serve`` and ``worker --serve``."""
    for option in reversed(
        [
            click.option(
                "--host",
                default="127.0.0.1",
                show_default=True,
                help="Where the server listens; beyond loopback it needs --token.",
            ),
            click.option(
                "--port",
                type=click.IntRange(0, 65535),
                default=8765,
                show_default=True,
                help="The TCP port (0: any free port; the URL is printed).",
            ),
            click.option(
                "--token",
                envvar=ENV_TOKEN,
                show_envvar=True,
                metavar="TOKEN",
                help="Every API request must send `Authorization: Bearer TOKEN`.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def check_journal(ctx: click.Context) -> str:
    """The --journal path, refused (a usage error) unless it holds a journal."""
    from .. import Engine

    path = journal_path(ctx, must_exist=True)
    try:
        Engine(path, create=False, read_only=True).close()
    except NotAJournalError as exc:
        raise usage_error(f"cannot serve the journal at {path!r}: {exc}", ctx) from None
    return path


def refused(exc: ReplayEngineError, ctx: click.Context) -> click.ClickException:
    """A server that cannot start: the extra, the bind or the port (exit 2)."""
    return usage_error(str(exc), ctx)


@click.command("serve")
@server_options
@click.option(
    "--read-only", is_flag=True, help="Refuse every write (posts, claims, cancels)."
)
@json_option
@click.pass_context
@reporting_errors
def serve_command(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    read_only: bool,
    as_json: bool,
) -> None:
    """Serve the HTTP JSON API and the web console on the journal until stopped.

    Binds 127.0.0.1 by default; any other address needs --token (or
    $REPLAY_ENGINE_TOKEN), and then every API request must carry it. It never
    imports or runs process code: run a `worker` for that. Needs the `serve`
    extra (pip install 'replay-engine[serve]'). SIGTERM/SIGINT stop it (exit 0).
    See docs/http-api.md.
    """
    path = check_journal(ctx)

    def ready(url: str) -> None:
        if as_json:
            # One line, so a supervisor reads it as soon as it is printed.
            doc = {"url": url, "journal": path, "read_only": read_only}
            click.echo(json.dumps(doc, ensure_ascii=False))
        else:
            echo(printable(f"serving {path} on {url} (Ctrl-C stops)"))

    try:
        serve(
            path,
            host=host,
            port=port,
            token=token or None,
            read_only=read_only,
            on_ready=ready,
        )
    except ReplayEngineError as exc:
        raise refused(exc, ctx) from None


def register(group: click.Group) -> None:
    """Add ``serve``."""
    group.add_command(serve_command)
