"""Starting the server: `replay_engine.serve`, the `serve` command, `worker --serve`.

Nothing here imports Starlette or uvicorn at module level: the package and the
CLI start without the ``serve`` extra, and asking for the server without it is
a :class:`ReplayEngineError` naming the extra.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ReplayEngineError

ENV_TOKEN = "REPLAY_ENGINE_TOKEN"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class ServeConfig:
    """What a server serves and how (see :func:`serve` for the fields)."""

    journal: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    read_only: bool = False
    durability: str = "fsync"
    """As the engines in this process open the journal (``worker --serve``)."""
    processes: tuple[Callable[..., Any], ...] = field(default=())
    """Processes ``POST /api/runs`` may submit: only those a worker in this
    process already loaded (``worker --serve``); a plain server submits none."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_config(config: ServeConfig) -> None:
    """Refuse what would be unsafe before anything listens.

    Raises:
        ReplayEngineError: a bind beyond loopback without a token, an empty
            token, or a port out of range.
    """
    if config.token is not None and len(config.token) < 16:
        raise ReplayEngineError(
            "the server's token is shorter than 16 characters: give a long random"
            f" one (--token or ${ENV_TOKEN}; e.g. `python -c 'import secrets;"
            " print(secrets.token_urlsafe(32))'`); nothing was started"
        )
    if not is_loopback(config.host) and config.token is None:
        raise ReplayEngineError(
            f"refusing to serve the journal on {config.host!r} without a token:"
            f" anyone who reaches that address could read and post to every run."
            f" Give --token (or ${ENV_TOKEN}), or bind to 127.0.0.1; nothing was"
            " started"
        )
    if not 0 <= config.port <= 65535:
        raise ReplayEngineError(f"port {config.port} is not in 0..65535")


def _require_extra() -> None:
    missing = []
    for module in ("starlette", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ReplayEngineError(
            f"the HTTP server needs the `serve` extra ({', '.join(missing)} is not"
            " installed): pip install 'replay-engine[serve]'"
        )


def _bind(config: ServeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host.strip("[]"), config.port))
    except OSError as exc:
        sock.close()
        raise ReplayEngineError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            " (another server there? choose --port)"
        ) from None
    # Listening now: a client connecting before uvicorn has started waits
    # in the backlog instead of being refused.
    sock.listen(128)
    return sock


def _server(
    config: ServeConfig, stop: threading.Event | None
) -> tuple[Any, socket.socket, str]:
    check_config(config)
    _require_extra()
    import uvicorn

    from .app import build_app

    class _Server(uvicorn.Server):
        """uvicorn's server, minus re-raising SIGTERM/SIGINT after shutdown.

        uvicorn re-raises a caught signal once it has shut down (a SIGTERM
        death, a KeyboardInterrupt traceback); a stopped server here is a
        clean exit.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {s: signal.signal(s, self.handle_exit) for s in _SIGNALS}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        async def on_tick(self, counter: int) -> bool:
            if stop is not None and stop.is_set():
                return True
            return bool(await super().on_tick(counter))

    app = build_app(config)
    sock = _bind(config)
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if ":" in config.host else config.host
    uv_config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", ws="none"
    )
    return _Server(uv_config), sock, f"http://{host}:{port}"


def serve(
    journal: str = ".replay",
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    read_only: bool = False,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    processes: Sequence[Callable[..., Any]] = (),
    durability: str = "fsync",
) -> None:
    """Serve the HTTP API and web console on ``journal`` until stopped.

    Blocks until SIGINT or SIGTERM (in the main thread) or until ``stop`` is
    set (from any thread: run it in a thread beside a worker). It never
    imports or runs process code (a worker executes runs), and each request
    opens the journal briefly. See docs/http-api.md.

    Args:
        journal: the journal directory (it must exist).
        host: where to listen; anything but a loopback address needs ``token``.
        port: the TCP port (0: any free port, see ``on_ready``).
        token: when given, every API request needs ``Authorization: Bearer
            TOKEN`` (at least 16 characters).
        read_only: refuse every write (posts, claims, cancels) with 403.
        on_ready: called with the server's URL once it accepts connections.
        stop: set it to stop the server (within about 0.1 s).
        processes: the processes ``POST /api/runs`` may submit runs of,
            already loaded by the caller (a worker's); none by default.
        durability: as every other engine on the journal in this process
            opens it (``"fsync"`` or ``"process"``).

    Raises:
        ReplayEngineError: the ``serve`` extra is missing, the bind is unsafe
            (beyond loopback without a token), or the port is taken.
    """
    config = ServeConfig(
        journal=journal,
        host=host,
        port=port,
        token=token,
        read_only=read_only,
        durability=durability,
        processes=tuple(processes),
    )
    server, sock, url = _server(config, stop)
    try:
        if on_ready is not None:
            on_ready(url)
        server.run(sockets=[sock])
    finally:
        sock.close()
