"""Real local receivers for alert tests: an SMTP server (aiosmtpd, with AUTH) and an HTTP server."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support.servers import free_port


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    subject: str
    body: str


class _Inbox:
    def __init__(self):
        self.messages: list[Mail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        with self.lock:
            self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), str(message["subject"] or ""), body))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on a free port, requiring AUTH LOGIN/PLAIN with ``user``/``password`` (no TLS)."""

    def __init__(self, user: str, password: str):
        self.user, self.password = user, password
        self.inbox = _Inbox()
        self.port = free_port()
        self.logins: list[tuple[str, bool]] = []

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == self.user
                and auth_data.password.decode() == self.password
            )
            self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
            return AuthResult(success=ok)

        self.controller = Controller(
            self.inbox,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticate,
            auth_required=True,
            auth_require_tls=False,
        )

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def messages(self) -> list[Mail]:
        with self.inbox.lock:
            return list(self.inbox.messages)


@dataclass
class Request:
    method: str
    path: str
    body: bytes

    def json(self):
        return json.loads(self.body.decode())


@dataclass
class HttpReceiver:
    """Records every request; answers ``status`` (settable, e.g. 500 to simulate an outage).
    ``slow_first`` seconds are spent before recording the first request, as a slow network would."""

    port: int = field(default_factory=free_port)
    requests: list[Request] = field(default_factory=list)
    status: int = 200
    slow_first: float = 0.0

    def start(self) -> HttpReceiver:
        receiver = self
        self.lock = threading.Lock()
        self.seen = 0

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    first = not receiver.seen
                    receiver.seen += 1
                if first and receiver.slow_first:
                    time.sleep(receiver.slow_first)
                receiver.requests.append(Request(self.command, self.path, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self, prefix: str = "") -> list[str]:
        return [r.path for r in list(self.requests) if r.path.startswith(prefix)]


def receiver_fixtures(password: str):
    """Module-scoped ``smtp`` (a real SMTP server requiring ``alerts``/``password``) and ``http``
    (a receiver for webhooks and pings) fixtures, for a conftest to bind: ``smtp, http = ...``."""

    @pytest.fixture(scope="module")
    def smtp():
        server = SmtpServer("alerts", password).start()
        yield server
        server.stop()

    @pytest.fixture(scope="module")
    def http():
        receiver = HttpReceiver().start()
        yield receiver
        receiver.stop()

    return smtp, http
