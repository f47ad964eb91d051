"""The gateway's uplink: sends the spool's messages to the platform's broker in order, QoS 1.

A sender thread reads the spool from its send position and publishes while the connection is up,
with at most ``max_inflight`` messages unacknowledged. Each PUBACK marks its message; the spool's
cursor moves over every acknowledged message in a row, so a message is confirmed only when it and
everything before it reached the broker. After a disconnect the send position goes back to the
cursor and the unconfirmed messages are sent again (the platform stores a point once however often
it arrives). paho reconnects with exponential backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from clusterbrain.connectors.gateway.config import UplinkConfig
from clusterbrain.connectors.gateway.spool import GatewaySpool
from clusterbrain.connectors.mqtt.client import PahoOptions, build_paho_client

log = logging.getLogger(__name__)


class Uplink:
    def __init__(
        self,
        config: UplinkConfig,
        client_id: str,
        username: str,
        password: str,
        spool: GatewaySpool,
        on_command: Callable[[str, bytes], None] | None = None,
        command_filter: str = "",
    ) -> None:
        self._config = config
        self._spool = spool
        self._on_command = on_command
        self._command_filter = command_filter
        self._lock = threading.Condition()
        self._connected = False
        self._send_from = spool.cursor
        self._inflight: dict[int, int] = {}  # mid → seq
        self._acked: set[int] = set()
        self._early: set[int] = set()  # PUBACKs that came before publish() returned their mid
        self._stopping = threading.Event()
        self.connects = 0
        self.disconnects = 0
        self.published = 0
        self.last_error = ""
        self._client = self._build(client_id, username, password)
        self._thread = threading.Thread(target=self._send_loop, name="gateway-uplink", daemon=True)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def _build(self, client_id: str, username: str, password: str) -> mqtt.Client:
        config = self._config
        client = build_paho_client(
            PahoOptions(
                client_id=client_id,
                protocol=config.protocol,
                username=username,
                password=password,
                tls=config.tls,
                ca_file=config.ca_file or "",
                reconnect_min_s=config.reconnect_min_s,
                reconnect_max_s=config.reconnect_max_s,
                max_inflight=config.max_inflight,
            )
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        self._client.connect_async(
            self._config.host, self._config.port, keepalive=self._config.keepalive_s
        )
        self._client.loop_start()
        self._thread.start()

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop sending, after up to ``drain_s`` for the spool to be sent and acknowledged;
        what is left stays in the spool for the next start."""
        with self._lock:
            self._lock.wait_for(lambda: not self._connected or not self._spool.pending, drain_s)
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def wake(self) -> None:
        """New messages are in the spool."""
        with self._lock:
            self._lock.notify_all()

    def publish_now(self, topic: str, payload: bytes) -> None:
        """A message that is not worth spooling (the gateway's own health): QoS 0, if connected."""
        if self._connected:
            self._client.publish(topic, payload, qos=0)

    # --- paho callbacks (network thread) ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            log.error("uplink: %s", self.last_error)
            return
        if self._command_filter:
            client.subscribe(self._command_filter, qos=1)
        with self._lock:
            self.connects += 1
            self._connected = True
            self._inflight.clear()
            self._acked.clear()
            self._early.clear()
            self._send_from = self._spool.cursor
            self._lock.notify_all()
        log.info("uplink connected to %s:%s", self._config.host, self._config.port)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._lock:
            self._connected = False
            self.disconnects += 1
            self._inflight.clear()
            self._acked.clear()
            self._send_from = self._spool.cursor
            self._lock.notify_all()
        if not self._stopping.is_set():
            self.last_error = f"disconnected: {reason}"
            log.warning("uplink disconnected (%s); reconnecting with backoff", reason)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any
    ) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                self._early.add(mid)
                return
            self._acknowledged(seq)

    def _acknowledged(self, seq: int) -> None:
        """Mark one message; confirm the run of acknowledged ones at the cursor (lock held)."""
        self._acked.add(seq)
        through = self._spool.cursor
        while through in self._acked:
            self._acked.discard(through)
            through += 1
        if through > self._spool.cursor:
            self._spool.confirm(through)
        self._lock.notify_all()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_command is not None:
            try:
                self._on_command(msg.topic, bytes(msg.payload))
            except Exception:  # a bad command must never stop the uplink
                log.exception("command on %s could not be handled", msg.topic)

    # --- the sender ---------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        limit = self._config.max_inflight
        while not self._stopping.is_set():
            with self._lock:
                self._lock.wait_for(
                    lambda: (
                        self._stopping.is_set()
                        or (
                            self._connected
                            and len(self._inflight) < limit
                            and self._send_from < self._spool_end()
                        )
                    ),
                    timeout=1.0,
                )
                if self._stopping.is_set() or not self._connected:
                    continue
                room = limit - len(self._inflight)
                start = max(self._send_from, self._spool.first_seq)
            if room <= 0:
                continue
            for message in self._spool.read(start, room):
                info = self._client.publish(message.topic, message.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # disconnected meanwhile: _on_disconnect rewinds
                with self._lock:
                    if not self._connected:
                        break
                    self._send_from = message.seq + 1
                    if info.mid in self._early:
                        self._early.discard(info.mid)
                        self._acknowledged(message.seq)
                    else:
                        self._inflight[info.mid] = message.seq
                    self.published += 1

    def _spool_end(self) -> int:
        return self._spool.cursor + self._spool.pending
