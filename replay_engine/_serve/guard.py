"""Who may do what: the token, read-only mode, CSRF and DNS-rebinding checks.

The rules (docs/http-api.md, "Security"):

- Bound to loopback, the ``Host`` header must name loopback too: a web page
  on another site cannot reach the server through a DNS name it rebinds to
  127.0.0.1.
- With a token, every ``/api`` request needs ``Authorization: Bearer TOKEN``
  (401 without one, 403 with a wrong one); the console also keeps it in a
  ``SameSite=Strict`` cookie ``re_token`` for the pages it frames. The
  console's static files hold no journal data and are served without it.
- A write (any ``POST``) is refused in read-only mode (403); its body must be
  ``application/json`` (415: an HTML form on another site cannot send that
  without a CORS preflight, which this server never answers); an ``Origin``
  header must be this server's own (403); and a request from a browser (it
  carries an ``Origin`` or a cookie) must echo the ``re_csrf`` cookie in an
  ``X-CSRF-Token`` header (double-submit). ``curl`` sends neither and needs
  only the token.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .entry import ServeConfig, is_loopback

CSRF_COOKIE = "re_csrf"
CSRF_HEADER = "x-csrf-token"
TOKEN_COOKIE = "re_token"


def error_response(
    status: int, error_type: str, message: str, **details: Any
) -> JSONResponse:
    """An error document shaped like the CLI's (``{"error": {...}}``)."""
    body = {
        "error": {
            "type": error_type,
            "message": message,
            "exit_code": 1 if status in (409, 500, 503) else 2,
            "http_status": status,
            **details,
        }
    }
    return JSONResponse(body, status_code=status)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def set_csrf_cookie(response: Response, request: Request) -> None:
    """Give a console page its double-submit token (kept if it has one)."""
    if request.cookies.get(CSRF_COOKIE):
        return
    response.set_cookie(
        CSRF_COOKIE, new_csrf_token(), httponly=False, samesite="strict", path="/"
    )


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def check_host(config: ServeConfig, request: Request) -> Response | None:
    """Refuse a loopback server reached under a non-loopback name (rebinding)."""
    if not is_loopback(config.host):
        return None
    host = _host_name(request.headers.get("host", ""))
    if host and is_loopback(host):
        return None
    return error_response(
        421,
        "Forbidden",
        f"this server listens on {config.host} and answers only requests addressed"
        f" to a loopback name, not {host!r} (a DNS-rebinding page would be one);"
        " use http://127.0.0.1:PORT",
    )


def check_token(config: ServeConfig, request: Request) -> Response | None:
    """With a token configured, an ``/api`` request must carry it."""
    if config.token is None:
        return None
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if not given and request.cookies.get(TOKEN_COOKIE):
        # The console's framed pages (the timeline) cannot send a header.
        scheme, value = "bearer", request.cookies[TOKEN_COOKIE]
    elif not given or scheme.lower() != "bearer":
        return error_response(
            401,
            "Unauthorized",
            "this server needs a token: send `Authorization: Bearer TOKEN` (the"
            " --token the server was started with); nothing was read or written",
        )
    if not hmac.compare_digest(value.strip().encode(), config.token.encode()):
        return error_response(
            403,
            "Forbidden",
            "the token sent in Authorization is not this server's; nothing was"
            " read or written",
        )
    return None


def check_write(config: ServeConfig, request: Request) -> Response | None:
    """Read-only mode, the content type, the origin and the CSRF token of a write."""
    if config.read_only:
        return error_response(
            403,
            "ReadOnly",
            "this server is read-only (--read-only): it refuses every write;"
            " nothing was written",
        )
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        return error_response(
            415,
            "UsageError",
            "a write needs a JSON body: send `Content-Type: application/json`;"
            " nothing was written",
        )
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin is not None and origin != own:
        return error_response(
            403,
            "Forbidden",
            f"a write from the page at {origin!r} is refused: only this server's"
            f" own console ({own}) may write from a browser; nothing was written",
        )
    cookie = request.cookies.get(CSRF_COOKIE)
    if origin is not None or cookie is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            return error_response(
                403,
                "Forbidden",
                "a write from a browser must echo the re_csrf cookie in the"
                " X-CSRF-Token header (reload the console); nothing was written",
            )
    return None
