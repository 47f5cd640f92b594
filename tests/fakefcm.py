"""A fake FCM on loopback for the real firebase-admin code path: Google's OAuth token
endpoint (the service account's ``token_uri``) and FCM HTTP v1 ``messages:send``.

Answers can be scripted per registration token: a list of (status, headers, FCM error
code or None) used in turn, then 200. Every request is recorded.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "fengqiao-test"
ACCESS_TOKEN = "fake-access-token"
SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


@dataclass
class Sent:
    token: str
    message: dict


@dataclass
class FakeFcm:
    script: dict[str, list[tuple[int, dict, str | None]]] = field(default_factory=dict)
    received: list[Sent] = field(default_factory=list)
    token_requests: int = 0
    unauthorised: int = 0

    def __post_init__(self):
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/token":
                    with fake._lock:
                        fake.token_requests += 1
                    return self._answer(200, {}, {"access_token": ACCESS_TOKEN, "expires_in": 3600,
                                                  "token_type": "Bearer"})
                match = SEND_PATH.match(self.path)
                if not match:
                    return self._answer(404, {}, {"error": {"code": 404, "status": "NOT_FOUND"}})
                if self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
                    with fake._lock:
                        fake.unauthorised += 1
                    return self._answer(401, {}, _error(401, None))
                message = json.loads(body)["message"]
                token = message.get("token") or message.get("fid") or ""
                with fake._lock:
                    fake.received.append(Sent(token, message))
                    steps = fake.script.get(token)
                    status, headers, code = steps.pop(0) if steps else (200, {}, None)
                    number = len(fake.received)
                if status == 200:
                    return self._answer(200, headers, {"name": f"projects/{match.group(1)}/messages/{number}"})
                return self._answer(status, headers, _error(status, code))

            def _answer(self, status: int, headers: dict, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def sent_to(self, token: str) -> list[dict]:
        with self._lock:
            return [s.message for s in self.received if s.token == token]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def service_account(self, directory: Path) -> Path:
        """A service-account file whose token_uri is this server (a fresh RSA key)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        path = directory / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key", "private_key": pem,
            "client_email": f"push@{PROJECT}.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"{self.url}/token",
        }))
        return path


def _error(status: int, code: str | None) -> dict:
    error = {"code": status, "message": f"fake FCM says {status}", "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    if code:
        error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    return {"error": error}
