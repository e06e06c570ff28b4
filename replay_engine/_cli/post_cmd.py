"""``post``: the outcome of an external effect, a signal, or a lease heartbeat.

Every write is one atomic LMDB transaction in the engine: a refused post
(``PostRejected``) writes nothing and exits 1 with the reason; input that is
not JSON exits 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import click

import journal_format as jf

from .. import PostRejected
from .common import (
    CliError,
    LeaseSeconds,
    emit_json,
    json_option,
    loads_json,
    make_console,
    open_engine,
    reporting_errors,
    usage_error,
)
from .safe_text import literal


def _parse_json(text: str, option: str, ctx: click.Context) -> Any:
    """The value of a JSON option (``-`` reads stdin); bad JSON is a usage error."""
    source = option
    if text == "-":
        text = sys.stdin.read()
        source = f"{option} - (stdin)"
    return loads_json(text, source, ctx, hint=". Quote strings: --result '\"text\"'")


def _check_key(key: str, ctx: click.Context) -> str:
    """``key`` in canonical dotted form; a malformed key is a usage error."""
    try:
        return jf.key_bytes_to_text(jf.encode_key(jf.parse_key(key)))
    except jf.FormatError as exc:
        raise usage_error(f"KEY: {exc}", ctx) from None


def _rejected(exc: PostRejected, *, as_json: bool) -> CliError:
    """A refused post/claim/heartbeat: exit 1, with its ``reason``."""
    details: dict[str, Any] = {"run_id": exc.run_id, "reason": exc.reason}
    if exc.key is not None:
        details["key"] = exc.key
    return CliError(
        str(exc), error_type="PostRejected", details=details, as_json=as_json
    )


@contextlib.contextmanager
def rejections(as_json: bool) -> Iterator[None]:
    """Report a refused post, claim or heartbeat (exit 1, with its reason)."""
    try:
        yield
    except PostRejected as exc:
        raise _rejected(exc, as_json=as_json) from None


def _one_action(ctx: click.Context, flags: dict[str, bool]) -> str:
    given = [name for name, on in flags.items() if on]
    if len(given) != 1:
        names = ", ".join(f"--{n}" for n in flags)
        what = "none" if not given else ", ".join(f"--{n}" for n in given)
        raise usage_error(f"give exactly one of {names} (got {what})", ctx)
    return given[0]


def _forbid(ctx: click.Context, action: str, **options: object) -> None:
    for name, value in options.items():
        if value is not None and value is not False:
            flag = "--" + name.replace("_", "-")
            raise usage_error(f"{flag} does not go with --{action}", ctx)


def _send_event(
    ctx: click.Context,
    engine: Any,
    run_id: str,
    event: str,
    payload_json: str | None,
    error: str | None,
) -> tuple[dict[str, Any], str]:
    """``post --event NAME``: a signal, or an error signal with ``--error``."""
    payload = (
        None if payload_json is None else _parse_json(payload_json, "--payload", ctx)
    )
    seq = engine.post_event(run_id, event, payload, error=error)
    doc: dict[str, Any] = {"run_id": run_id, "event": event, "seq": seq}
    if error is None:
        return doc, f"sent event {event!r} to run {run_id} (event seq {seq})"
    doc["error"] = error
    return doc, f"sent event {event!r} as an error to run {run_id} (event seq {seq})"


@click.command("post")
@click.argument("run_id")
@click.argument("key", required=False)
@click.option("--result", "result_json", metavar="JSON", help="The effect's result.")
@click.option(
    "--error",
    "error",
    metavar="MSG",
    help="Fail the effect (or event wait) at KEY with MSG; with --event, send an"
    " error signal.",
)
@click.option(
    "--approve", is_flag=True, help='Answer a breakpoint: {"approved": true, ...}.'
)
@click.option(
    "--reject", is_flag=True, help='Answer a breakpoint: {"approved": false, ...}.'
)
@click.option(
    "--response",
    "response_json",
    metavar="JSON",
    help="With --approve/--reject: the answer's response.",
)
@click.option("--event", metavar="NAME", help="Send the signal NAME (no KEY).")
@click.option(
    "--payload", "payload_json", metavar="JSON", help="With --event: its payload."
)
@click.option(
    "--heartbeat", is_flag=True, help="Extend the lease of --by on KEY by --lease."
)
@click.option("--by", metavar="WORKER", help="The posting (or heartbeating) worker.")
@click.option(
    "--lease",
    type=LeaseSeconds(),
    metavar="SECONDS",
    help="With --heartbeat: the new lease, from now.",
)
@json_option
@click.pass_context
@reporting_errors
def post_command(
    ctx: click.Context,
    run_id: str,
    key: str | None,
    result_json: str | None,
    error: str | None,
    approve: bool,
    reject: bool,
    response_json: str | None,
    event: str | None,
    payload_json: str | None,
    heartbeat: bool,
    by: str | None,
    lease: float | None,
    as_json: bool,
) -> None:
    """Post the outcome of the external effect at KEY of RUN_ID, or a signal.

    \b
      post RUN_ID KEY --result JSON            the effect's result
      post RUN_ID KEY --error MSG              the effect failed
      post RUN_ID KEY --approve|--reject [--response JSON]   a breakpoint
      post RUN_ID --event NAME [--payload JSON]              a signal
      post RUN_ID --event NAME --error MSG     the wait that takes it fails
      post RUN_ID KEY --heartbeat --by WORKER --lease SECONDS

    --error also fails a ctx.wait_for_event wait by its KEY. A JSON value of
    '-' is read from stdin. The post is validated and atomic:
    an unknown key, a key that already has a result, an abandoned key, a
    finished run, or an effect claimed by another worker is refused (exit 1)
    and nothing is written. Then run `replay-engine iterate RUN_ID` to go on.
    """  # noqa: D301 - \b is click's "keep this paragraph as is" marker
    action = _one_action(
        ctx,
        {
            "result": result_json is not None,
            # --event NAME --error MSG is an error signal, one action.
            "error": error is not None and event is None,
            "approve": approve,
            "reject": reject,
            "event": event is not None,
            "heartbeat": heartbeat,
        },
    )
    if action != "heartbeat":
        _forbid(ctx, action, lease=lease)
    if action not in ("approve", "reject"):
        _forbid(ctx, action, response=response_json)
    if action != "event":
        _forbid(ctx, action, payload=payload_json)
        if key is None:
            raise usage_error(f"--{action} needs the KEY of the effect", ctx)
        key = _check_key(key, ctx)
    elif key is not None:
        raise usage_error("--event sends a signal to the run: give no KEY", ctx)
    else:
        _forbid(ctx, action, by=by)
        if error is not None:
            _forbid(ctx, "error", payload=payload_json)
    if action == "heartbeat" and (by is None or lease is None):
        raise usage_error("--heartbeat needs --by WORKER and --lease SECONDS", ctx)

    doc: dict[str, Any]
    # post, post --event and --heartbeat read no stored payload: the probe
    # reads the run's record and events only (isolation.probe_run).
    engine_cm = open_engine(ctx, access="write", run_id=run_id, probe_payloads=False)
    with engine_cm as engine, rejections(as_json):
        if action == "event":
            assert event is not None
            doc, human = _send_event(ctx, engine, run_id, event, payload_json, error)
        elif action == "heartbeat":
            assert key is not None and by is not None and lease is not None
            until = engine.heartbeat(run_id, key, by, lease=lease)
            doc = {"run_id": run_id, "key": key, "worker": by, "lease_expires": until}
            human = f"lease of {by} on key {key} of run {run_id} extended to {until}"
        else:
            assert key is not None
            if action == "error":
                seq = engine.post(run_id, key, error=error, by=by)
            else:
                if action == "result":
                    assert result_json is not None
                    value = _parse_json(result_json, "--result", ctx)
                else:
                    response = (
                        None
                        if response_json is None
                        else _parse_json(response_json, "--response", ctx)
                    )
                    value = {"approved": action == "approve", "response": response}
                seq = engine.post(run_id, key, result=value, by=by)
            posted = "error" if action == "error" else "result"
            doc = {
                "run_id": run_id,
                "key": key,
                "posted": posted,
                "seq": seq,
                "by": by,
            }
            human = (
                f"posted {'an error' if action == 'error' else 'the result'} to key"
                f" {key} of run {run_id} (event seq {seq}); go on with: replay-engine"
                f" iterate {run_id}"
            )
    if as_json:
        emit_json(doc)
    else:
        make_console().print(literal(human))
