"""The JSON API: its plumbing (errors, input, engines per request) and its reads.

Each endpoint is an async handler that checks its input, then runs one
function in Starlette's thread pool with an :class:`Engine` opened for that
request and closed after it (``with_engine``). The journal's environment is
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
from .._cli.common import STATUSES, USAGE_ERRORS, CliError
from .._cli.values import BadJson, dumps, parse_json
from . import views
from .entry import ServeConfig

T = TypeVar("T")
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


async def with_engine(config: ServeConfig, fn: Callable[[Engine], T]) -> T:
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


def run_id_param(request: Request) -> str:
    run_id = str(request.path_params["run_id"])
    try:
        jf.check_run_id(run_id)
    except jf.FormatError as exc:
        raise BadRequest(f"run id: {exc}") from None
    return run_id


def key_param(request: Request) -> str:
    key = str(request.path_params["key"])
    try:
        return jf.key_bytes_to_text(jf.encode_key(jf.parse_key(key)))
    except jf.FormatError as exc:
        raise BadRequest(f"key: {exc}") from None


def int_query(request: Request, name: str, default: int, top: int) -> int:
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


async def read_body(
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


ANY: tuple[type, ...] = ()
TEXT = (str,)
OPT_TEXT = (str, type(None))
NUMBER = (int, float)


# -- reads ---------------------------------------------------------------------


@api
async def list_runs(request: Request, config: ServeConfig) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"?status={status!r} is not one of {', '.join(STATUSES)}")
    search = request.query_params.get("q") or None
    process = request.query_params.get("process") or None
    limit = int_query(request, "limit", 500, 100_000)
    rows = await with_engine(
        config, lambda e: views.runs(e, status, search, process, limit)
    )
    return json_response(rows)


@api
async def run_status(request: Request, config: ServeConfig) -> Response:
    run_id = run_id_param(request)
    return json_response(await with_engine(config, lambda e: views.status(e, run_id)))


@api
async def run_events(request: Request, config: ServeConfig) -> Response:
    run_id = run_id_param(request)
    start = int_query(request, "from", 0, 1 << 62)
    limit = int_query(request, "limit", views.MAX_PAGE, views.MAX_PAGE)
    docs, after = await with_engine(
        config, lambda e: views.events_page(e, run_id, start, limit)
    )
    return json_response({"run_id": run_id, "events": docs, "next": after})


@api
async def run_pending(request: Request, config: ServeConfig) -> Response:
    run_id = run_id_param(request)
    return json_response(await with_engine(config, lambda e: views.pending(e, run_id)))


@api
async def list_approvals(request: Request, config: ServeConfig) -> Response:
    del request
    return json_response(await with_engine(config, views.approvals))


@api
async def list_claims(request: Request, config: ServeConfig) -> Response:
    del request
    return json_response(await with_engine(config, views.claims))
