"""A real SMTP server process (aiosmtpd) that stores what it receives in a mailbox folder."""

from __future__ import annotations

import mailbox
import subprocess
import sys
import time
from email.message import Message
from pathlib import Path

from support.services import free_port, port_open


class SmtpServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SmtpServer:
        command = [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{self.port}",
            "-c",
            "aiosmtpd.handlers.Mailbox",
            str(self.folder / "mail"),
        ]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port, 0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"SMTP server did not start: {self._process.stderr}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)

    def messages(self, expect: int = 1, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            box = mailbox.Maildir(str(self.folder / "mail"), create=False)
            found = list(box)
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.1)
