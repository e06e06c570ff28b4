"""Forty posters, over HTTP and the CLI at once: one winner per key, nothing lost."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx

import journal_format as jf
from replay_engine import Engine
from tests.journal_views import key_of
from tests.serve.servers import cli, server, start_run


def test_forty_posters_over_http_and_the_cli_one_winner_per_key(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    keys = [f"0.{i}.0" for i in range(10)]
    start_run(journal, "agents", "race", {"n": len(keys)})
    outcomes: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
    lock = threading.Lock()
    with server(journal) as s:

        def over_http(key: str, n: int) -> None:
            with httpx.Client(base_url=s.url, timeout=60) as c:
                r = c.post(f"/api/runs/race/effects/{key}", json={"result": f"http{n}"})
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert r.json()["error"]["reason"] == "already_completed"
            with lock:
                outcomes[key].append((f"http{n}", r.status_code))

        def over_cli(key: str, n: int) -> None:
            done = cli(
                journal,
                "post",
                "race",
                key,
                "--result",
                json.dumps(f"cli{n}"),
                "--json",
            )
            assert done.returncode in (0, 1), done.stderr
            if done.returncode == 1:
                assert json.loads(done.stdout)["error"]["reason"] == "already_completed"
            with lock:
                outcomes[key].append((f"cli{n}", 200 if done.returncode == 0 else 409))

        threads = [
            threading.Thread(target=fn, args=(key, n))
            for key in keys
            for n, fn in enumerate([over_http, over_http, over_cli, over_cli])
        ]
        assert len(threads) == 40
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads)
        pending = s.client.get("/api/runs/race/pending").json()["pending"]
        assert pending == []
    recorded: dict[str, Any] = {}
    with Engine(str(journal), read_only=True) as engine:
        for stored in engine.events("race"):
            event = stored.event
            if isinstance(event, jf.EffectCompleted):
                key = key_of(event)
                assert key not in recorded, f"two results for {key}"
                recorded[key] = engine.payload(event.result)
    for key in keys:
        winners = [who for who, status in outcomes[key] if status == 200]
        assert len(outcomes[key]) == 4, key
        assert len(winners) == 1, (key, outcomes[key])
        assert recorded[key] == winners[0]
