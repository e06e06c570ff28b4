"""The Starlette application: routes, the security checks, the console's files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import guard, handlers, stream
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


class _Guard(BaseHTTPMiddleware):
    """Every request passes :mod:`.guard` first; every answer gets safe headers."""

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        config: ServeConfig = request.app.state.config
        refused = guard.check_host(config, request)
        if refused is None and request.url.path.startswith("/api/"):
            refused = guard.check_token(config, request)
            if refused is None and request.method not in ("GET", "HEAD"):
                refused = guard.check_write(config, request)
        response = refused or await call_next(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers.setdefault("Cache-Control", "no-store")
        if "sandbox" not in headers["Content-Security-Policy"]:
            headers["X-Frame-Options"] = "DENY"
        return response


def build_app(config: ServeConfig) -> Starlette:
    """The ASGI application serving ``config.journal``."""
    h = handlers
    routes = [
        Route("/", _index),
        Route("/static/{name}", _static),
        Route("/openapi.json", _openapi),
        Route("/api/runs", h.list_runs, methods=["GET"]),
        Route("/api/runs", h.submit, methods=["POST"]),
        Route("/api/runs/{run_id}", h.run_status),
        Route("/api/runs/{run_id}/events", h.run_events),
        Route("/api/runs/{run_id}/stream", stream.run_stream),
        Route("/api/runs/{run_id}/timeline", stream.run_timeline),
        Route("/api/runs/{run_id}/pending", h.run_pending),
        Route("/api/runs/{run_id}/claim", h.claim, methods=["POST"]),
        Route("/api/runs/{run_id}/signals", h.signal, methods=["POST"]),
        Route("/api/runs/{run_id}/cancel", h.cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/effects/{key}", h.post_effect, methods=["POST"]),
        Route(
            "/api/runs/{run_id}/effects/{key}/heartbeat", h.heartbeat, methods=["POST"]
        ),
        Route("/api/approvals", h.list_approvals),
        Route("/api/claims", h.list_claims),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard)])
    app.state.config = config
    return app
