"""A smart plug for tests: an HTTP server on 127.0.0.1 in a thread that behaves like a
Shelly-style relay (JSON) and a Tasmota-style one (GET with a command), and can fail."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse

TOKEN = "plug-token-0123456789"  # noqa: S105 (a test credential)
PASSWORD = "plug-password-xyz"  # noqa: S105


class Plug:
    def __init__(self):
        self.on = True
        self.requests: list[dict] = []
        self.release = threading.Event()  # /slow answers once this is set
        plug = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, code: int, body: object, headers: dict | None = None) -> None:
                data = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                headers = dict(self.headers)
                plug.requests.append(
                    {"method": self.command, "path": url.path, "query": query, "headers": headers, "body": body}
                )
                if url.path == "/relay/0":  # Shelly-like, bearer token
                    if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                        return self._answer(401, {"error": "unauthorized"})
                    if self.command == "POST":
                        plug.on = json.loads(body)["turn"] == "on"
                    return self._answer(200, {"ison": plug.on, "source": "http"})
                if url.path == "/cm":  # Tasmota-like, credentials in the query
                    if query.get("user") != "admin" or query.get("password") != PASSWORD:
                        return self._answer(401, {"WARNING": "Need user=<username>&password=<password>"})
                    command = query.get("cmnd", "")
                    if command in ("Power On", "Power Off"):
                        plug.on = command == "Power On"
                    return self._answer(200, {"POWER": "ON" if plug.on else "OFF"})
                if url.path == "/basic":
                    import base64

                    expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
                    if self.headers.get("Authorization") != expected:
                        return self._answer(401, {"error": "unauthorized"})
                    return self._answer(200, {"ok": True})
                if url.path == "/fail":
                    return self._answer(500, b"relay stuck")
                if url.path == "/slow":
                    plug.release.wait(30)
                    return self._answer(200, {"ok": True})
                if url.path == "/redirect":
                    return self._answer(302, b"", {"Location": "/relay/0"})
                return self._answer(404, {"error": "no such path"})

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def shelly_params(self, **overrides) -> dict:
        """Webhook driver parameters for the Shelly-like relay (bearer token in secrets)."""
        return {
            "on": {"url": f"{self.base}/relay/0", "body": {"turn": "on", "board": "{hostname}"}},
            "off": {"url": f"{self.base}/relay/0", "body": {"turn": "off", "board": "{hostname}"}},
            "status": {"url": f"{self.base}/relay/0"},
            "status_json_path": "ison",
            "auth": "bearer",
            "cycle_delay": 1,
            **overrides,
        }
