"""The demo's pure-Python MQTT broker (amqtt), so that the platform runs on a bare machine.

Production uses Mosquitto with per-device ACLs (see `clusterbrain.devices.broker_auth`); this
broker applies the same rule in amqtt's plugin hooks: a device (any username that is not a service
account) may publish, subscribe and receive only under ``cb/v1/<its username>/``.

amqtt 0.12 speaks MQTT 3.1.1 only (no ``$share`` shared subscriptions, no MQTT 5 clients), keeps
sessions in memory only, and resolves clean-session and client-id take-over *before* it asks the
authentication plugins; bind it to localhost.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

Authenticate = Callable[[str, str], bool]
TOPIC_ROOT = "cb/v1/"
NOISY_LOGGERS = ("amqtt", "transitions")

logger = logging.getLogger(__name__)


# --- the rule ---------------------------------------------------------------------------------


def is_usable_username(username: str) -> bool:
    """A username becomes a topic level: wildcards or '/' would reach other devices' topics."""
    return bool(username) and not username.startswith("$") and not any(c in username for c in "/+#")


def device_may_use(username: str, topic: str) -> bool:
    """Publish, subscribe (filter) or receive: only below the device's own id.

    >>> device_may_use("dev-a", "cb/v1/dev-a/telemetry"), device_may_use("dev-a", "cb/v1/dev-b/x")
    (True, False)
    >>> device_may_use("dev-a", "cb/v1/+/telemetry"), device_may_use("dev-a", "cb/v1/dev-a")
    (False, False)
    """
    return is_usable_username(username) and topic.startswith(f"{TOPIC_ROOT}{username}/")


@dataclass
class AccessPolicy:
    """Who may connect and where devices may go; shared by the two plugins of one broker."""

    authenticate: Authenticate | None
    service_accounts: Mapping[str, str] = field(default_factory=dict)
    denied: int = 0

    def accepts(self, username: str | None, password: str | None) -> bool:
        if self.authenticate is None:
            return True
        if not username or not is_usable_username(username):
            return False
        if username in self.service_accounts:
            expected = self.service_accounts[username].encode()
            return hmac.compare_digest(expected, (password or "").encode())
        try:
            return bool(self.authenticate(username, password or ""))
        except Exception:  # a failing check must refuse, never crash the broker
            logger.exception("authenticate(%r) failed; refusing the connection", username)
            return False

    def allows(self, username: str | None, topic: str | None) -> bool:
        if self.authenticate is None or (username and username in self.service_accounts):
            return True
        allowed = bool(username and topic and device_may_use(username, topic))
        if not allowed:
            self.denied += 1
        return allowed


# --- amqtt plugins (loaded by dotted path, configured with the policy object) -------------------


class DeviceAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Accepts a CONNECT only if the policy does; also refuses a will message aimed at another
    device's topics, because amqtt publishes wills without topic checks."""

    @dataclass
    class Config:
        policy: Any = None

    async def authenticate(self, *, session: Session) -> bool:
        policy: AccessPolicy = self.config.policy
        username, password = session.username, session.password
        # the callback may hit a database: keep it off the broker's event loop
        loop = asyncio.get_running_loop()
        accepted = await loop.run_in_executor(None, policy.accepts, username, password)
        if accepted and session.will_flag:
            accepted = policy.allows(username, session.will_topic)
        return bool(accepted)


class DeviceTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Publish, subscribe and receive checks; receive matters because a persistent session's
    subscriptions outlive the identity that made them (same client id, other username)."""

    @dataclass
    class Config:
        policy: Any = None

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        policy: AccessPolicy = self.config.policy
        return policy.allows(session.username if session else None, topic)


def _plugin_path(plugin: type) -> str:
    return f"{plugin.__module__}.{plugin.__qualname__}"


# --- the broker in its own thread -------------------------------------------------------------


class EmbeddedBroker:
    """An amqtt broker on its own thread and event loop, so that synchronous code (the CLI,
    tests, paho clients) can start and stop it."""

    def __init__(
        self,
        host: str,
        port: int,
        authenticate: Authenticate | None = None,
        *,
        service_accounts: Mapping[str, str] | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.policy = AccessPolicy(authenticate, dict(service_accounts or {}))
        self.start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Broker | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def denied(self) -> int:
        """Refused publishes, subscriptions, deliveries and wills: visible, not just logged."""
        return self.policy.denied

    def start(self) -> EmbeddedBroker:
        """Return once the listener accepts connections; raise if the broker cannot start."""
        if self._thread is not None:
            raise RuntimeError("embedded broker already started")
        quiet_amqtt_logging()
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name="embedded-mqtt", daemon=True)
        self._thread.start()
        if not self._started.wait(self.start_timeout):
            raise RuntimeError(f"embedded broker did not start within {self.start_timeout}s")
        if self._start_error is not None:
            self._thread.join(self.start_timeout)
            self._thread = None
            raise RuntimeError(f"embedded broker failed to start: {self._start_error}")
        return self

    def stop(self, timeout: float = 4.0) -> None:
        """Shut the broker down (its sessions are lost: amqtt keeps them in memory)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._broker is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout / 2), loop)
            future.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = self._broker = self._loop = None

    async def _shutdown(self, timeout: float) -> None:
        """amqtt's shutdown can hang on the handler of a resumed persistent session; after the
        timeout close the listening sockets ourselves, and `_run` cancels what is left."""
        assert self._broker is not None
        try:
            await asyncio.wait_for(self._broker.shutdown(), timeout)
        except Exception:  # TimeoutError or an amqtt error: shutting down regardless
            logger.warning("embedded broker did not shut down cleanly; closing it", exc_info=True)
            for server in getattr(self._broker, "_servers", {}).values():
                if server.instance is not None:
                    server.instance.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._broker = loop.run_until_complete(self._start_broker())
        except BaseException as exc:  # reported to start(), which raises it in the caller
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            _cancel_remaining(loop)
            loop.close()

    async def _start_broker(self) -> Broker:
        broker = Broker(self._config(), loop=asyncio.get_running_loop())
        await broker.start()
        return broker

    def _config(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {_plugin_path(DeviceAuthPlugin): {"policy": self.policy}}
        if self.policy.authenticate is not None:
            plugins[_plugin_path(DeviceTopicPlugin)] = {"policy": self.policy}
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": plugins,
        }


def quiet_amqtt_logging() -> None:
    """amqtt logs every connection and packet at INFO; keep warnings only."""
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """After an unclean shutdown amqtt logs each cancelled task as an error; it is expected."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    amqtt_logger = logging.getLogger("amqtt")
    level = amqtt_logger.level
    amqtt_logger.setLevel(logging.CRITICAL)
    try:
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    finally:
        amqtt_logger.setLevel(level)
