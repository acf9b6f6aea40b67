"""A Jupyter server's client for the engine tests, standard library only: the REST API (status,
contents, kernels) and code run on a kernel over its websocket (RFC 6455, text frames, the
server's JSON message protocol). The token goes in the Authorization header, never in a URL.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via HTTP_PROXY


@dataclass
class Server:
    port: int
    token: str | None
    host: str = "127.0.0.1"

    def request(
        self, method: str, path: str, body: Any = None, token: bool = True
    ) -> tuple[int, Any]:
        """(HTTP status, decoded JSON or None) of one API call."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.host}:{self.port}{path}", data, method=method)
        req.add_header("Content-Type", "application/json")
        if token and self.token:
            req.add_header("Authorization", f"token {self.token}")
        try:
            with _DIRECT.open(req, timeout=60) as reply:
                text = reply.read().decode()
                return reply.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def wait_until_up(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api", token=False)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"no Jupyter server answered on {self.host}:{self.port}")

    def open_notebook(self, path: str, kernel: str = "python3") -> Kernel:
        """The kernel of a session on the notebook at `path`, as JupyterLab opens one (it runs
        in the notebook's folder)."""
        body = {"path": path, "type": "notebook", "kernel": {"name": kernel}}
        status, made = self.request("POST", "/api/sessions", body)
        assert status == 201, status
        return Kernel(self, made["kernel"]["id"], made["id"])


@dataclass
class Kernel:
    server: Server
    id: str
    session_id: str  # the server's session (notebook <-> kernel)
    session: str = field(default_factory=lambda: uuid.uuid4().hex)  # this client's, in messages
    _sock: socket.socket | None = None
    _reader: Any = None

    def _connect(self) -> None:
        s = self.server
        sock = socket.create_connection((s.host, s.port), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /api/kernels/{self.id}/channels?session_id={self.session} HTTP/1.1\r\n"
                f"Host: {s.host}:{s.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: token {s.token}\r\n\r\n"
            ).encode()
        )
        self._reader = sock.makefile("rb")
        status = self._reader.readline().decode()
        while self._reader.readline() not in (b"\r\n", b""):
            pass
        if " 101 " not in status:
            sock.close()
            raise ConnectionError(f"the kernel's websocket refused: {status.strip()}")
        self._sock = sock

    def _send(self, text: str) -> None:
        assert self._sock is not None
        self._frame(0x1, text.encode())

    def _frame(self, opcode: int, data: bytes) -> None:
        assert self._sock is not None
        n = len(data)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)  # a client masks every frame
        self._sock.sendall(bytes(head) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n: int) -> bytes:
        data = self._reader.read(n)
        if len(data) != n:
            raise ConnectionError("the kernel's websocket closed")
        return bytes(data)

    def _receive(self) -> str:
        message = b""
        while True:
            first, second = self._exact(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            mask = self._exact(4) if second & 0x80 else b""
            payload = self._exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("the kernel's websocket closed")
            if opcode == 0x9:  # ping
                self._frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            message += payload
            if first & 0x80:
                return message.decode()

    def execute(self, code: str, timeout: float = 300) -> tuple[str, str | None]:
        """Run `code`; (its output: streams and results, the error or None)."""
        if self._sock is None:
            self._connect()
        msg_id = uuid.uuid4().hex
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self._send(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session,
                       "msg_type": "execute_request", "version": "5.3", "date": now},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))  # fmt: skip
        output, error, idle, replied = "", None, False, False
        deadline = time.monotonic() + timeout
        while not (idle and replied):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kernel did not finish in {timeout}s: {output[-2000:]}")
            msg = json.loads(self._receive())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["header"]["msg_type"], msg["content"]
            if kind == "stream":
                output += content["text"]
            elif kind in ("execute_result", "display_data"):
                output += content["data"].get("text/plain", "") + "\n"
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        return output, error

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.server.request("DELETE", f"/api/sessions/{self.session_id}")
