"""Headless Chromium driven over the DevTools protocol (a websocket), no downloads.

``browser(profile)`` starts ``/usr/bin/chromium`` with a DevTools port and
yields a :class:`Page`: ``goto``, ``eval`` (JavaScript, awaited, by value)
and ``wait`` (poll an expression until it is truthy, bounded).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 60.0


class Page:
    """One tab, spoken to through its DevTools websocket."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(
            ws_url, timeout=TIMEOUT, suppress_origin=True
        )
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        self._ws.send(json.dumps({"id": n, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = json.loads(self._ws.recv())
            if message.get("id") == n:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]
        raise AssertionError(f"{method}: no answer in {TIMEOUT}s")

    def eval(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait(self, expression: str, what: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                # A DOM node comes back by value as {}: test its truth in JS.
                if self.eval(f"!!({expression})") is True:
                    return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} ({expression})")

    def close(self) -> None:
        self._ws.close()


@contextlib.contextmanager
def browser(profile: Path) -> Iterator[Page]:
    """Headless Chromium on about:blank; its one page, closed and killed after."""
    proc = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    page = None
    try:
        assert proc.stderr is not None
        port = None
        deadline = time.monotonic() + TIMEOUT
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                port = int(found.group(1))
        assert port is not None, "chromium did not open its DevTools port"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            targets = json.loads(r.read())
        tab = next(t for t in targets if t["type"] == "page")
        page = Page(tab["webSocketDebuggerUrl"])
        page.call("Page.enable")
        page.call("Runtime.enable")
        yield page
    finally:
        if page is not None:
            page.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=TIMEOUT)
