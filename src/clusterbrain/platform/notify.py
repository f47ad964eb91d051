"""Delivering notifications: e-mail over SMTP and JSON webhooks, each retried with backoff.

Used by alarms (raised, cleared, escalated) and scheduled reports. Delivery problems raise
``DeliveryFailed`` after the retries, so the caller can record and show them.
"""

from __future__ import annotations

import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, TypeVar

import orjson

from clusterbrain.platform.errors import Unavailable

T = TypeVar("T")


class DeliveryFailed(Unavailable):
    """A notification could not be delivered after its retries."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: str = ""
    sender: str = "clusterbrain@localhost"
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "octet-stream"


@dataclass(frozen=True, slots=True)
class Email:
    to: Sequence[str]
    subject: str
    text: str
    html: str = ""
    attachments: Sequence[Attachment] = field(default_factory=tuple)


def _retry(action: Callable[[], T], what: str, attempts: int, backoff_s: float) -> T:
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
            if attempt == attempts:
                raise DeliveryFailed(f"{what} failed after {attempts} attempts: {exc}") from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def build_message(settings: SmtpSettings, email: Email) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(email.to)
    message["Subject"] = email.subject
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    for item in email.attachments:
        message.add_attachment(
            item.content, maintype=item.maintype, subtype=item.subtype, filename=item.filename
        )
    return message


def send_email(
    settings: SmtpSettings, email: Email, *, attempts: int = 3, backoff_s: float = 0.5
) -> None:
    """Send one e-mail (text, optional HTML and attachments)."""
    if not email.to:
        return
    message = build_message(settings, email)

    def deliver() -> None:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_s) as smtp:
            if settings.starttls:
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)

    _retry(deliver, f"e-mail to {message['To']}", attempts, backoff_s)


def post_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float = 5.0,
    attempts: int = 3,
    backoff_s: float = 0.5,
) -> int:
    """POST JSON to a webhook; returns the HTTP status. A 5xx answer is retried, 4xx is not."""
    body = orjson.dumps(payload)

    def deliver() -> int:
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise
            raise DeliveryFailed(f"webhook {url} refused the notification: {exc.code}") from exc

    return _retry(deliver, f"webhook {url}", attempts, backoff_s)
