"""The one place a paho-mqtt client is put together (ingest, Sparkplug ingest, gateway uplink).

The three differ only in what ``PahoOptions`` says: whether the broker keeps the session across
reconnects, whether messages are acknowledged by the caller once persisted, TLS, and their flow
limits. Callbacks are set by each caller on the client it gets back.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True, slots=True)
class PahoOptions:
    client_id: str
    protocol: str = "5"
    """``"5"`` or ``"3.1.1"``."""
    username: str = ""
    password: str = ""
    persistent_session: bool = False
    """Keep the broker-side session (subscriptions, unacknowledged QoS 1 messages) across
    reconnects and restarts. On MQTT 5 that is decided at connect time (clean start and session
    expiry), so it only changes the client for MQTT 3.1.1."""
    manual_ack: bool = False
    """PUBACKs are sent by the caller (``client.ack``) once the message is safe, not on receipt."""
    tls: bool = False
    ca_file: str = ""
    """CA bundle for the broker's certificate; the system's when empty."""
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    max_inflight: int | None = None
    """Unacknowledged outgoing QoS 1/2 messages; paho's default (20) when None."""
    max_queued: int | None = None
    """Outgoing messages paho queues beyond those in flight; 0 is unlimited, None paho's default."""


def build_paho_client(options: PahoOptions) -> mqtt.Client:
    """A paho client (callback API 2) set up as ``options`` say, not yet connected.

    >>> client = build_paho_client(PahoOptions("cb-doc", protocol="3.1.1", persistent_session=True))
    >>> client.protocol == mqtt.MQTTv311, client._clean_session, client._manual_ack
    (True, False, False)
    """
    v5 = options.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not options.persistent_session,
        manual_ack=options.manual_ack,
    )
    if options.username:
        client.username_pw_set(options.username, options.password)
    if options.tls:
        client.tls_set_context(ssl.create_default_context(cafile=options.ca_file or None))
    client.reconnect_delay_set(
        min_delay=max(1, round(options.reconnect_min_s)),
        max_delay=max(1, round(options.reconnect_max_s)),
    )
    if options.max_inflight is not None:
        client.max_inflight_messages_set(options.max_inflight)
    if options.max_queued is not None:
        client.max_queued_messages_set(options.max_queued)
    return client
