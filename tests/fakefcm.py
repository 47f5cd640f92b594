"""A fake FCM on loopback for the real firebase-admin code path: Google's OAuth token
endpoint (the service account's ``token_uri``) and FCM HTTP v1 ``messages:send``.

Answers can be scripted per registration token: a list of (status, headers, FCM error
code or None) used in turn, then 200. Every request is recorded.

It speaks HTTP/1.1 with keep-alive, as FCM does, on an asyncio loop in a thread of its
own: one thread for any number of connections, so that it keeps up with firebase-admin's
``send_each`` (a thread and a connection per message, up to 500) in the benchmark.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT = "fengqiao-test"
ACCESS_TOKEN = "fake-access-token"
SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
MAX_HEADER_BYTES = 64 * 1024


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
    backlog: int = 1024

    def __post_init__(self):
        self._lock = threading.Lock()
        self._connections: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._connection, "127.0.0.1", 0, backlog=self.backlog, limit=MAX_HEADER_BYTES))
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-fcm", daemon=True)
        self._thread.start()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Requests on one connection, one after another, until the client closes it."""
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, extra, payload = self._answer(method, path, headers, body)
                data = json.dumps(payload).encode()
                lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Content-Type: application/json",
                         f"Content-Length: {len(data)}", *(f"{k}: {v}" for k, v in extra.items())]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):  # a client gone mid-request
            return
        finally:
            self._connections.discard(task)
            writer.close()

    def _answer(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, dict]:
        if method != "POST":
            return 405, {}, {"error": {"code": 405, "status": "METHOD_NOT_ALLOWED"}}
        if path == "/token":
            with self._lock:
                self.token_requests += 1
            return 200, {}, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        match = SEND_PATH.match(path)
        if not match:
            return 404, {}, {"error": {"code": 404, "status": "NOT_FOUND"}}
        if headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
            with self._lock:
                self.unauthorised += 1
            return 401, {}, _error(401, None)
        message = json.loads(body)["message"]
        token = message.get("token") or message.get("fid") or ""
        with self._lock:
            self.received.append(Sent(token, message))
            steps = self.script.get(token)
            status, extra, code = steps.pop(0) if steps else (200, {}, None)
            number = len(self.received)
        if status == 200:
            return 200, extra, {"name": f"projects/{match.group(1)}/messages/{number}"}
        return status, extra, _error(status, code)

    @property
    def url(self) -> str:
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def sent_to(self, token: str) -> list[dict]:
        with self._lock:
            return [s.message for s in self.received if s.token == token]

    def close(self) -> None:
        async def stop():  # the listener, then the connections clients keep open
            self._server.close()
            await self._server.wait_closed()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

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
