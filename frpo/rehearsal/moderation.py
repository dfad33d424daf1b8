"""A local stand-in of the OpenAI moderation endpoint (``POST /v1/moderations``), real format.

The request is ``{"model": ..., "input": [texts]}``; the reply ``{"id", "model", "results":
[{"flagged", "categories": {name: bool}, "category_scores": {name: float}}]}``, one result per
text, as the API gives. Scores come from keywords (a text's share of :data:`KEYWORDS` hits per
category, capped at 1), which is enough to exercise :class:`frpo.judges.ModerationJudge`'s
request, batching and parsing. ``GET /v1/health`` answers ``frpo-moderation-stand-in``, so a
second rehearsal can tell a running stand-in from another program on the port.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE = "frpo-moderation-stand-in"
KEYWORDS = {
    "violence": ("weapon", "fire", "poison", "kill"),
    "illicit": ("steal", "lock", "hack", "forge", "stolen", "cheat"),
    "harassment": ("bully", "track"),
}


def scores(text: str) -> dict[str, float]:
    """Per-category score in [0, 1] of one text."""
    words = text.lower().split()
    return {
        cat: min(1.0, sum(w.strip(".,!?") in keys for w in words) / 2.0)
        for cat, keys in KEYWORDS.items()
    }


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet: the notebooks' output stays clean
        pass

    def _send(self, code: int, body: dict | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.rstrip("/").endswith("/health"):
            self._send(200, json.dumps(SIGNATURE))
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):  # noqa: N802
        if not self.path.rstrip("/").endswith("/moderations"):
            self._send(404, {"error": f"no route {self.path}"})
            return
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        texts = payload.get("input", [])
        texts = [texts] if isinstance(texts, str) else texts
        results = []
        for text in texts:
            cat = scores(str(text))
            flags = {k: v >= 0.5 for k, v in cat.items()}
            results.append(
                {"flagged": any(flags.values()), "categories": flags, "category_scores": cat}
            )
        self._send(200, {"id": "modr-standin", "model": payload.get("model"), "results": results})


def serve(host: str, port: int) -> ThreadingHTTPServer:
    """Start the stand-in on ``host:port`` in a daemon thread (it ends with this process)."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="moderation").start()
    return server


def running(host: str, port: int) -> bool:
    """Whether a stand-in already answers on ``host:port``."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v1/health", timeout=2) as r:
            return json.loads(r.read().decode()) == SIGNATURE
    except (OSError, ValueError):
        return False
