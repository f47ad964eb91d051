"""A real mosquitto per test: its own port, config, persistence and dynsec file in a tmp dir.

Tests of the whole project use it so that broker behaviour (ACLs, persistent sessions, restarts)
is the real one, not a fake's.
"""

from __future__ import annotations

import getpass
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from support.services import free_port, missing_service, port_open

MOSQUITTO = Path("/usr/sbin/mosquitto")
MOSQUITTO_CTRL = Path("/usr/bin/mosquitto_ctrl")
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
HOST = "127.0.0.1"


class Credentials(NamedTuple):
    username: str
    password: str


class MosquittoProcess:
    """One mosquitto broker; `restart()` keeps port and persistence so sessions survive it."""

    def __init__(
        self,
        workdir: Path,
        *,
        dynsec: bool = False,
        allow_anonymous: bool | None = None,
        admin_username: str = "cb-admin",
        max_queued_messages: int = 1_000_000,
        start_timeout: float = 10.0,
    ) -> None:
        self.workdir = workdir
        self.dynsec = dynsec
        self.allow_anonymous = (not dynsec) if allow_anonymous is None else allow_anonymous
        self.admin_credentials = Credentials(admin_username, secrets.token_urlsafe(16))
        self.max_queued_messages = max_queued_messages
        self.start_timeout = start_timeout
        self.host = HOST
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("mosquitto has not been started")
        return self._port

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def dynsec_path(self) -> Path:
        return self.workdir / "dynamic-security.json"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MosquittoProcess:
        """Start on a free port (first time) and return once it accepts TCP connections."""
        require_mosquitto(dynsec=self.dynsec)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.dynsec and not self.dynsec_path.exists():
            self._init_dynsec()
        if self._port is None:
            self._port = free_port()
        self._write_config()
        self._launch()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown, which also writes the persistence file."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is saved beyond what autosave already wrote."""
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        """Stop cleanly and start again on the same port with the same persistence."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """The broker's log, for assertion messages when something went wrong."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _init_dynsec(self) -> None:
        """`mosquitto_ctrl dynsec init` writes the JSON with a hashed admin password, no prompt."""
        user, password = self.admin_credentials
        cmd = [str(MOSQUITTO_CTRL), "dynsec", "init", str(self.dynsec_path), user, password]
        subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=10)

    def _write_config(self) -> None:
        self.config_path.write_text(self._config_text())

    def _config_text(self) -> str:
        persistence = self.workdir / "persistence"
        persistence.mkdir(exist_ok=True)
        lines = [
            # As root, mosquitto would switch to a user who cannot write into the tmp dir.
            f"user {getpass.getuser()}",
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {persistence}",
            f"max_queued_messages {self.max_queued_messages}",
            "max_inflight_messages 0",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %H:%M:%S",
        ]
        if self.dynsec:
            lines += [f"plugin {DYNSEC_PLUGIN}", f"plugin_opt_config_file {self.dynsec_path}"]
        return "\n".join(lines) + "\n"

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start: {self._startup_output()}")
            if port_open(HOST, self.port, timeout=0.2):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_text()}")

    def _startup_output(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        return self._process.stderr.read().decode(errors="replace") + self.log_text()

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        self._process = None


def require_mosquitto(*, dynsec: bool = False) -> None:
    """Skip (or fail under CI) when the broker, or the dynsec plugin and its tool, are missing."""
    if not MOSQUITTO.exists():
        missing_service("mosquitto")
    if dynsec and not (DYNSEC_PLUGIN.exists() and MOSQUITTO_CTRL.exists()):
        missing_service("mosquitto dynamic security plugin")
