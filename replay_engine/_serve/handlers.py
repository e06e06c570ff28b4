"""The JSON API's endpoints (docs/http-api.md).

Each endpoint is an async handler that checks its input, then runs one
function in Starlette's thread pool with an :class:`Engine` opened for that
request and closed after it (``_with_engine``). The journal's environment is
shared per process and its transactions are serialised by the store (one at a
time per process); each engine object is used by one thread only. So a post
here races a post from the CLI or another request exactly as two CLI posts
do: the store's one write transaction decides, and the loser gets the same
``PostRejected`` (409) the CLI prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import journal_format as jf

from .. import (
    Engine,
    PostRejected,
    ReplayEngineError,
    RunEndedError,
    RunLockedError,
    RunNotFoundError,
)
from .._cli.cancel_cmd import cancel_document
from .._cli.common import STATUSES, USAGE_ERRORS, CliError
from .._cli.values import BadJson, dumps, parse_json
from . import views
from .entry import ServeConfig

T = TypeVar("T")
_MISSING: Any = object()
MAX_BODY = 16 << 20
"""The largest request body read (a result is stored whole in the journal)."""


class BadRequest(Exception):
    """Input the API refuses before touching the journal (400, nothing written)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def json_response(document: Any, status: int = 200) -> Response:
    """A document printed as the CLI prints it (strict JSON, controls escaped)."""
    return Response(dumps(document), status_code=status, media_type="application/json")


def _problem(exc: BaseException) -> Response:
    if isinstance(exc, BadRequest):
        return JSONResponse(
            {
                "error": {
                    "type": "UsageError",
                    "message": exc.message,
                    "exit_code": 2,
                    "http_status": exc.status,
                }
            },
            status_code=exc.status,
        )
    if isinstance(exc, PostRejected):
        details: dict[str, Any] = {"run_id": exc.run_id, "reason": exc.reason}
        if exc.key is not None:
            details["key"] = exc.key
        doc = CliError(str(exc), error_type="PostRejected", details=details).document()
        status = 409
    else:
        doc = CliError.from_exception(exc, as_json=True).document()
        if isinstance(exc, RunNotFoundError):
            status = 404
        elif isinstance(exc, USAGE_ERRORS):
            status = 400
        elif isinstance(exc, RunEndedError | RunLockedError):
            status = 409
        else:
            status = 500
    doc["error"]["http_status"] = status
    return json_response(doc, status)


async def _with_engine(config: ServeConfig, fn: Callable[[Engine], T]) -> T:
    """Run ``fn`` in a worker thread with an engine opened for it alone."""

    def body() -> T:
        with Engine(
            config.journal,
            create=False,
            read_only=config.read_only,
            durability="process" if config.durability == "process" else "fsync",
        ) as e:
            return fn(e)

    return await run_in_threadpool(body)


def api(
    fn: Callable[[Request, ServeConfig], Any],
) -> Callable[[Request], Any]:
    """An endpoint: engine errors and bad input become the CLI's error documents."""

    async def endpoint(request: Request) -> Response:
        config: ServeConfig = request.app.state.config
        try:
            return await fn(request, config)  # type: ignore[no-any-return]
        except (BadRequest, ReplayEngineError) as exc:
            return _problem(exc)

    endpoint.__name__ = fn.__name__
    return endpoint


# -- input ---------------------------------------------------------------------


def _run_id(request: Request) -> str:
    run_id = str(request.path_params["run_id"])
    try:
        jf.check_run_id(run_id)
    except jf.FormatError as exc:
        raise BadRequest(f"run id: {exc}") from None
    return run_id


def _key(request: Request) -> str:
    key = str(request.path_params["key"])
    try:
        return jf.key_bytes_to_text(jf.encode_key(jf.parse_key(key)))
    except jf.FormatError as exc:
        raise BadRequest(f"key: {exc}") from None


def _int_query(request: Request, name: str, default: int, top: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"?{name}={text!r} is not a whole number") from None
    if not 0 <= value <= top:
        raise BadRequest(f"?{name}={value} is not in 0..{top}")
    return value


async def _body(
    request: Request, allowed: dict[str, tuple[type, ...]], required: set[str]
) -> dict[str, Any]:
    """The request's JSON object, with only ``allowed`` fields of their types."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes; nothing was written", 413)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadRequest(f"the body is over {MAX_BODY} bytes; nothing was written", 413)
    try:
        doc = parse_json(raw.decode("utf-8")) if raw.strip() else {}
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8; nothing was written") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column"
            f" {exc.colno}; nothing was written"
        ) from None
    except BadJson as exc:
        raise BadRequest(f"the body {exc}; nothing was written") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object; nothing was written")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))});"
            " nothing was written"
        )
    missing = sorted(required - set(doc))
    if missing:
        raise BadRequest(f"the field {missing[0]!r} is required; nothing was written")
    for name, types in allowed.items():
        if name not in doc or not types:
            continue
        value = doc[name]
        # JSON true is a Python int too: a lease of `true` is refused, not 1 s.
        if not isinstance(value, types) or (
            isinstance(value, bool) and bool not in types
        ):
            wanted = " or ".join(
                "null" if t is type(None) else t.__name__ for t in types
            )
            raise BadRequest(f"{name!r} must be {wanted}; nothing was written")
    return doc


_ANY: tuple[type, ...] = ()
_TEXT = (str,)
_OPT_TEXT = (str, type(None))
_NUMBER = (int, float)


# -- reads ---------------------------------------------------------------------


@api
async def list_runs(request: Request, config: ServeConfig) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"?status={status!r} is not one of {', '.join(STATUSES)}")
    search = request.query_params.get("q") or None
    process = request.query_params.get("process") or None
    limit = _int_query(request, "limit", 500, 100_000)
    rows = await _with_engine(
        config, lambda e: views.runs(e, status, search, process, limit)
    )
    return json_response(rows)


@api
async def run_status(request: Request, config: ServeConfig) -> Response:
    run_id = _run_id(request)
    return json_response(await _with_engine(config, lambda e: views.status(e, run_id)))


@api
async def run_events(request: Request, config: ServeConfig) -> Response:
    run_id = _run_id(request)
    start = _int_query(request, "from", 0, 1 << 62)
    limit = _int_query(request, "limit", views.MAX_PAGE, views.MAX_PAGE)
    docs, after = await _with_engine(
        config, lambda e: views.events_page(e, run_id, start, limit)
    )
    return json_response({"run_id": run_id, "events": docs, "next": after})


@api
async def run_pending(request: Request, config: ServeConfig) -> Response:
    run_id = _run_id(request)
    return json_response(await _with_engine(config, lambda e: views.pending(e, run_id)))


@api
async def list_approvals(request: Request, config: ServeConfig) -> Response:
    del request
    return json_response(await _with_engine(config, views.approvals))


@api
async def list_claims(request: Request, config: ServeConfig) -> Response:
    del request
    return json_response(await _with_engine(config, views.claims))


# -- writes --------------------------------------------------------------------

_POST_FIELDS: dict[str, tuple[type, ...]] = {
    "result": _ANY,
    "error": _TEXT,
    "approve": (bool,),
    "reject": (bool,),
    "response": _ANY,
    "by": _OPT_TEXT,
}


@api
async def post_effect(request: Request, config: ServeConfig) -> Response:
    """``post RUN KEY --result|--error|--approve|--reject``."""
    run_id, key = _run_id(request), _key(request)
    doc = await _body(request, _POST_FIELDS, set())
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

    seq = await _with_engine(config, body)
    posted = "error" if action == "error" else "result"
    return json_response(
        {"run_id": run_id, "key": key, "posted": posted, "seq": seq, "by": by}
    )


@api
async def heartbeat(request: Request, config: ServeConfig) -> Response:
    """``post RUN KEY --heartbeat --by W --lease S``."""
    run_id, key = _run_id(request), _key(request)
    doc = await _body(request, {"worker": _TEXT, "lease": _NUMBER}, {"worker", "lease"})
    until = await _with_engine(
        config,
        lambda e: e.heartbeat(run_id, key, doc["worker"], lease=float(doc["lease"])),
    )
    return json_response(
        {"run_id": run_id, "key": key, "worker": doc["worker"], "lease_expires": until}
    )


@api
async def claim(request: Request, config: ServeConfig) -> Response:
    """``pending RUN --claim W --lease S [--max N] [--kind K]``."""
    run_id = _run_id(request)
    doc = await _body(
        request,
        {"worker": _TEXT, "lease": _NUMBER, "max": (int,), "kind": _OPT_TEXT},
        {"worker", "lease"},
    )
    limit = doc.get("max", 1)
    if limit < 1:
        raise BadRequest(f"'max' must be at least 1, not {limit}; nothing was written")
    lease = float(doc["lease"])
    claimed = await _with_engine(
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
    run_id = _run_id(request)
    doc = await _body(request, {"event": _TEXT, "payload": _ANY}, {"event"})
    seq = await _with_engine(
        config, lambda e: e.post_event(run_id, doc["event"], doc.get("payload"))
    )
    return json_response({"run_id": run_id, "event": doc["event"], "seq": seq})


@api
async def cancel(request: Request, config: ServeConfig) -> Response:
    """``cancel RUN [--reason TEXT]``."""
    run_id = _run_id(request)
    doc = await _body(request, {"reason": _OPT_TEXT}, set())
    info = await _with_engine(config, lambda e: e.cancel(run_id, doc.get("reason")))
    return json_response(cancel_document(info))


@api
async def submit(request: Request, config: ServeConfig) -> Response:
    """``submit``: only processes a worker in this process already loaded."""
    doc = await _body(
        request,
        {"process": _TEXT, "inputs": _ANY, "run_id": _OPT_TEXT, "queue": _OPT_TEXT},
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
    info = await _with_engine(
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
