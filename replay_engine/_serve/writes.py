"""The JSON API's writes: posts, claims, heartbeats, signals, cancels, submits.

Each is the CLI command named in its docstring, through the same ``Engine``
method: one atomic journal transaction that either records the write or
refuses it (``PostRejected``, 409) and writes nothing.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

import journal_format as jf

from .. import Engine
from .._cli.cancel_cmd import cancel_document
from .entry import ServeConfig
from .handlers import (
    ANY,
    NUMBER,
    OPT_TEXT,
    TEXT,
    BadRequest,
    api,
    json_response,
    key_param,
    read_body,
    run_id_param,
    with_engine,
)

_POST_FIELDS: dict[str, tuple[type, ...]] = {
    "result": ANY,
    "error": TEXT,
    "approve": (bool,),
    "reject": (bool,),
    "response": ANY,
    "by": OPT_TEXT,
}


@api
async def post_effect(request: Request, config: ServeConfig) -> Response:
    """``post RUN KEY --result|--error|--approve|--reject``."""
    run_id, key = run_id_param(request), key_param(request)
    doc = await read_body(request, _POST_FIELDS, set())
    actions = [
        a
        for a in ("result", "error", "approve", "reject")
        if doc.get(a, False) is not False
    ]
    if len(actions) != 1:
        raise BadRequest(
            "give exactly one of 'result', 'error', 'approve': true, 'reject': true"
            f" (got {', '.join(actions) or 'none'}); nothing was written"
        )
    action = actions[0]
    if "response" in doc and action not in ("approve", "reject"):
        raise BadRequest(f"'response' does not go with {action!r}; nothing was written")
    by = doc.get("by")

    def body(engine: Engine) -> int:
        if action == "error":
            return engine.post(run_id, key, error=doc["error"], by=by)
        if action == "result":
            value = doc["result"]
        else:
            value = {"approved": action == "approve", "response": doc.get("response")}
        return engine.post(run_id, key, result=value, by=by)

    seq = await with_engine(config, body)
    posted = "error" if action == "error" else "result"
    return json_response(
        {"run_id": run_id, "key": key, "posted": posted, "seq": seq, "by": by}
    )


@api
async def heartbeat(request: Request, config: ServeConfig) -> Response:
    """``post RUN KEY --heartbeat --by W --lease S``."""
    run_id, key = run_id_param(request), key_param(request)
    doc = await read_body(
        request, {"worker": TEXT, "lease": NUMBER}, {"worker", "lease"}
    )
    until = await with_engine(
        config,
        lambda e: e.heartbeat(run_id, key, doc["worker"], lease=float(doc["lease"])),
    )
    return json_response(
        {"run_id": run_id, "key": key, "worker": doc["worker"], "lease_expires": until}
    )


@api
async def claim(request: Request, config: ServeConfig) -> Response:
    """``pending RUN --claim W --lease S [--max N] [--kind K]``."""
    run_id = run_id_param(request)
    doc = await read_body(
        request,
        {"worker": TEXT, "lease": NUMBER, "max": (int,), "kind": OPT_TEXT},
        {"worker", "lease"},
    )
    limit = doc.get("max", 1)
    if limit < 1:
        raise BadRequest(f"'max' must be at least 1, not {limit}; nothing was written")
    lease = float(doc["lease"])
    claimed = await with_engine(
        config,
        lambda e: e.claim(
            run_id, doc["worker"], lease=lease, limit=limit, kind=doc.get("kind")
        ),
    )
    return json_response(
        {
            "run_id": run_id,
            "worker": doc["worker"],
            "lease": lease,
            "claimed": [c.to_dict() for c in claimed],
        }
    )


@api
async def signal(request: Request, config: ServeConfig) -> Response:
    """``post RUN --event NAME [--payload JSON]``."""
    run_id = run_id_param(request)
    doc = await read_body(request, {"event": TEXT, "payload": ANY}, {"event"})
    seq = await with_engine(
        config, lambda e: e.post_event(run_id, doc["event"], doc.get("payload"))
    )
    return json_response({"run_id": run_id, "event": doc["event"], "seq": seq})


@api
async def cancel(request: Request, config: ServeConfig) -> Response:
    """``cancel RUN [--reason TEXT]``."""
    run_id = run_id_param(request)
    doc = await read_body(request, {"reason": OPT_TEXT}, set())
    info = await with_engine(config, lambda e: e.cancel(run_id, doc.get("reason")))
    return json_response(cancel_document(info))


@api
async def submit(request: Request, config: ServeConfig) -> Response:
    """``submit``: only processes a worker in this process already loaded."""
    doc = await read_body(
        request,
        {"process": TEXT, "inputs": ANY, "run_id": OPT_TEXT, "queue": OPT_TEXT},
        {"process"},
    )
    known = {f"{fn.__module__}:{fn.__qualname__}": fn for fn in config.processes}
    fn = known.get(doc["process"])
    if fn is None:
        offered = ", ".join(sorted(known)) or "none: this server runs no worker"
        raise BadRequest(
            f"this server cannot submit {doc['process']!r}: it never imports process"
            f" code, and submits only the processes of the worker it runs with"
            f" (`worker --serve`): {offered}. Use `replay-engine submit` on the"
            " machine of the journal; nothing was recorded",
            403,
        )
    run_id = doc.get("run_id")
    if run_id is not None:
        try:
            jf.check_run_id(run_id)
        except jf.FormatError as exc:
            raise BadRequest(f"run_id: {exc}; nothing was recorded") from None
    info = await with_engine(
        config,
        lambda e: e.submit(
            fn, doc.get("inputs"), run_id=run_id, queue=doc.get("queue")
        ),
    )
    return json_response(
        {
            "run_id": info.run_id,
            # As recorded: the worker beside this server may have started it
            # already, between the record and this answer.
            "status": "queued",
            "queue": info.queue,
            "process": info.process,
        },
        201,
    )
