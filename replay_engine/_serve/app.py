"""The Starlette application: routes, the security checks, the console's files."""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import guard, handlers, stream, writes
from .entry import ServeConfig

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)
_STATIC = {
    "console.js": "text/javascript",
    "console.css": "text/css",
}


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


async def _index(request: Request) -> Response:
    response = Response(_asset("index.html"), media_type="text/html")
    guard.set_csrf_cookie(response, request)
    return response


async def _static(request: Request) -> Response:
    name = str(request.path_params["name"])
    media = _STATIC.get(name)
    if media is None:
        return guard.error_response(404, "NotFound", f"no file {name!r} here")
    return Response(_asset(name), media_type=media)


async def _openapi(request: Request) -> Response:
    del request
    return Response(_asset("openapi.json"), media_type="application/json")


_SAFE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _Guard:
    """Every request passes :mod:`.guard` first; every answer gets safe headers.

    A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which
    re-streams every response and would delay each by a TCP round trip).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        config: ServeConfig = scope["app"].state.config
        refused = guard.check_host(config, request)
        if refused is None and request.url.path.startswith("/api/"):
            refused = guard.check_token(config, request)
            if refused is None and request.method not in ("GET", "HEAD"):
                refused = guard.check_write(config, request)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                csp = dict(headers).get(b"content-security-policy")
                if csp is None:
                    headers.append((b"content-security-policy", CONSOLE_CSP.encode()))
                if csp is None or b"sandbox" not in csp:
                    headers.append((b"x-frame-options", b"DENY"))
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + _SAFE_HEADERS}
            await send(message)

        if refused is not None:
            await refused(scope, receive, with_headers)
        else:
            await self.app(scope, receive, with_headers)


def build_app(config: ServeConfig) -> Starlette:
    """The ASGI application serving ``config.journal``."""
    h = handlers
    routes = [
        Route("/", _index),
        Route("/static/{name}", _static),
        Route("/openapi.json", _openapi),
        Route("/api/runs", h.list_runs, methods=["GET"]),
        Route("/api/runs", writes.submit, methods=["POST"]),
        Route("/api/runs/{run_id}", h.run_status),
        Route("/api/runs/{run_id}/events", h.run_events),
        Route("/api/runs/{run_id}/stream", stream.run_stream),
        Route("/api/runs/{run_id}/timeline", stream.run_timeline),
        Route("/api/runs/{run_id}/pending", h.run_pending),
        Route("/api/runs/{run_id}/claim", writes.claim, methods=["POST"]),
        Route("/api/runs/{run_id}/signals", writes.signal, methods=["POST"]),
        Route("/api/runs/{run_id}/cancel", writes.cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/effects/{key}", writes.post_effect, methods=["POST"]),
        Route(
            "/api/runs/{run_id}/effects/{key}/heartbeat",
            writes.heartbeat,
            methods=["POST"],
        ),
        Route("/api/approvals", h.list_approvals),
        Route("/api/claims", h.list_claims),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard)])
    app.state.config = config
    return app
