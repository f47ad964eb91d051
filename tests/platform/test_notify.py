"""E-mail through a real SMTP server process, and webhooks to a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from clusterbrain.platform.notify import (
    Attachment,
    DeliveryFailed,
    Email,
    SmtpSettings,
    post_webhook,
    send_email,
)
from support.services import free_port
from support.smtp import SmtpServer


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def test_email_with_html_and_attachment_arrives(smtp: SmtpServer) -> None:
    settings = SmtpSettings(port=smtp.port, sender="brain@cluster.test")
    email = Email(
        to=["manager@lamps.test"],
        subject="班报 Shift report",
        text="OEE 79.2 %",
        html="<p>OEE <b>79.2 %</b></p>",
        attachments=[Attachment("report.pdf", b"%PDF-1.4 test", "application", "pdf")],
    )
    send_email(settings, email)
    [message] = smtp.messages()
    assert message["To"] == "manager@lamps.test"
    assert "Shift report" in str(message["Subject"]) or "=?utf-8?" in str(message["Subject"])
    parts = {part.get_content_type(): part for part in message.walk()}
    assert "text/html" in parts and "application/pdf" in parts
    assert parts["application/pdf"].get_filename() == "report.pdf"


def test_unreachable_smtp_fails_clearly_after_retries() -> None:
    settings = SmtpSettings(port=free_port(), timeout_s=0.5)
    with pytest.raises(DeliveryFailed, match="after 2 attempts"):
        send_email(
            settings, Email(to=["a@b.test"], subject="s", text="t"), attempts=2, backoff_s=0.01
        )


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []
    fail_first = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Recorder.fail_first > 0:
            _Recorder.fail_first -= 1
            self.send_response(503)
        else:
            _Recorder.received.append((self.path, body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[str]:
    _Recorder.received = []
    server = HTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def test_webhook_retries_a_5xx_then_delivers(webhook_server: str) -> None:
    _Recorder.fail_first = 1
    status = post_webhook(
        f"{webhook_server}/hook", {"alarm": "temp high", "温度": 251.5}, backoff_s=0.01
    )
    assert status == 204
    [(path, body)] = _Recorder.received
    assert path == "/hook" and orjson.loads(body)["温度"] == 251.5
