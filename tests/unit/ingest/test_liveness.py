"""The consumer's /livez: 200 while the loop marks progress, 503 with the reason once it stops."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from crm_events.ingest.liveness import LOOP_STALE, LoopProgress
from crm_events.ingest.metrics_server import consumer_http_serve


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_loop_is_alive_until_it_stops_marking_progress():
    progress = LoopProgress()
    assert progress.stale(5.0) is None  # just started
    progress.last_at -= 6.0
    assert progress.stale(5.0) == LOOP_STALE.format(age=progress.age(), max_age=5.0)
    progress.beat()
    assert progress.stale(5.0) is None


def test_the_server_answers_livez_from_the_progress_and_metrics_on_every_other_path():
    progress = LoopProgress()
    server = consumer_http_serve("127.0.0.1", 0, progress, 5.0)
    port = server.server_address[1]
    try:
        assert get(port, "/livez") == (200, b'{"ok": true}')
        progress.last_at -= 60.0
        status, body = get(port, "/livez")
        assert status == 503
        assert json.loads(body)["ok"] is False
        assert json.loads(body)["error"].startswith("the consume loop made no progress for 60.")
        status, body = get(port, "/metrics")
        assert status == 200 and b"process_cpu_seconds_total" in body
        progress.beat()
        assert get(port, "/livez")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
