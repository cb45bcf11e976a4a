"""An OAuth 2 token endpoint of the test's own (client credentials), issuing the unsigned JWTs
that Kafka's default OAUTHBEARER validator (the unsecured one) accepts.

It runs in a thread of the test process on a free loopback port, checks the client's HTTP
Basic credentials, and counts the tokens it issued, so a test can see a client refresh.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from scripts.servers import LOOPBACK


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsecured_jwt(subject: str, lifetime: float, scope: str = "") -> str:
    """An `alg: none` JWT with sub, iat, exp (and scope): what Kafka's unsecured validator reads."""
    now = time.time()
    claims: dict[str, object] = {"sub": subject, "iat": int(now), "exp": int(now + lifetime)}
    if scope:
        claims["scope"] = scope
    return f"{_b64({'alg': 'none'})}.{_b64(claims)}."


class TokenEndpoint:
    def __init__(self, clients: dict[str, str], *, lifetime: float) -> None:
        self.clients = clients
        self.lifetime = lifetime
        self.issued: list[dict[str, str]] = []  # the form of every request that got a token
        self.refused = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                status, body = endpoint.answer(self.headers.get("Authorization", ""), form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="token-endpoint", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}/oauth2/token"

    def answer(self, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        client_id, secret = self._basic(authorization)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id not in self.clients or self.clients[client_id] != secret:
            self.refused += 1
            return 401, {"error": "invalid_client", "error_description": "bad client credentials"}
        self.issued.append(form)
        token = unsecured_jwt(client_id, self.lifetime, form.get("scope", ""))
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    @staticmethod
    def _basic(authorization: str) -> tuple[str, str]:
        if not authorization.startswith("Basic "):
            return "", ""
        user, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        return urllib.parse.unquote(user), urllib.parse.unquote(secret)

    def start(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
