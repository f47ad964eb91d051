"""The gateway's OPC UA source: one server, read by subscription (or polling), written by command.

One asyncua ``Client`` per connection. When the connection is lost (socket closed, a failed
keep-alive probe, a subscription status change, a failed poll) the whole client is dropped with
its subscription and a new one is built after a backoff, so a server that restarts a hundred
times still sees one session and one subscription from the gateway, never a pile of stale ones.
asyncua's own auto-reconnect is left off on purpose: it keeps subscription objects across
sessions, which is the state this design avoids having to reason about.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from asyncua import ua
from asyncua.client.client import Client
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.crypto import cert_gen
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID

from clusterbrain.connectors.opcua._session import close_client, open_client, parse_node_id
from clusterbrain.connectors.opcua.commands import CommandRejected, check_range, coerce
from clusterbrain.connectors.opcua.config import (
    DEFAULT_APPLICATION_URI,
    OpcUaConfig,
    OpcUaNode,
    OpcUaSecurity,
)
from clusterbrain.connectors.opcua.quality import (
    changed,
    quality_from_status,
    reading_value,
    timestamp_us,
)
from clusterbrain.connectors.source import (
    Backoff,
    Emit,
    Reading,
    SourceCounters,
    Value,
    WriteRefused,
)
from clusterbrain.platform.errors import Unavailable
from clusterbrain.telemetry.quality import Quality

__all__ = [
    "OpcUaConfig",
    "OpcUaConnectError",
    "OpcUaNode",
    "OpcUaSecurity",
    "OpcUaSource",
    "describe_error",
    "ensure_client_certificate",
]

_log = logging.getLogger(__name__)

_AUTH_STATUSES = frozenset(
    {
        "BadUserAccessDenied",
        "BadIdentityTokenInvalid",
        "BadIdentityTokenRejected",
        "BadUserSignatureInvalid",
    }
)
_SECURITY_STATUSES = frozenset(
    {
        "BadSecurityChecksFailed",
        "BadSecurityPolicyRejected",
        "BadSecurityModeRejected",
        "BadNonceInvalid",
        "BadApplicationSignatureInvalid",
    }
)
_EXTRA_COUNTERS = (
    "subscriptions",
    "unsupported_values",
    "auth_failures",
    "security_failures",
    "poll_fallbacks",
    "emit_errors",
)


class OpcUaConnectError(Unavailable):
    """A server could not be reached or refused the session; ``kind`` says which way.

    Kinds: ``unreachable``, ``timeout``, ``auth`` (user name or password refused), ``security``
    (certificate or policy refused), ``protocol`` (any other OPC UA error).
    """

    title = "OPC UA server unavailable"
    type_slug = "opcua-unavailable"

    def __init__(self, detail: str, *, kind: str) -> None:
        super().__init__(detail)
        self.kind = kind


def _status_name(code: int) -> str:
    return ua.StatusCode(ua.UInt32(code)).name


def describe_error(exc: BaseException, endpoint: str) -> tuple[str, str]:
    """``(kind, message)`` for a failure talking to ``endpoint``, in words an engineer can act on."""
    if isinstance(exc, OpcUaConnectError):
        return exc.kind, exc.detail
    if isinstance(exc, UaStatusCodeError):
        name = _status_name(exc.code)
        if name in _AUTH_STATUSES:
            return "auth", f"{endpoint} refused the login ({name}): check username and password"
        if name.startswith("BadCertificate") or name in _SECURITY_STATUSES:
            return "security", (
                f"{endpoint} refused the secure channel ({name}): check that the server trusts "
                "the gateway's certificate and offers the configured policy and mode"
            )
        return "protocol", f"{endpoint} answered {name}"
    if isinstance(exc, ConnectionRefusedError):
        return "unreachable", f"{endpoint} refused the connection: is the server running?"
    if isinstance(exc, TimeoutError):
        return "timeout", f"{endpoint} did not answer in time"
    if isinstance(exc, OSError | ConnectionError):
        return "unreachable", f"cannot reach {endpoint}: {exc or type(exc).__name__}"
    if isinstance(exc, UaError):
        return "protocol", f"{endpoint}: {exc}"
    return "error", f"{endpoint}: {type(exc).__name__}: {exc}"


async def ensure_client_certificate(
    certificate: Path,
    private_key: Path,
    *,
    application_uri: str = DEFAULT_APPLICATION_URI,
    host_name: str | None = None,
) -> None:
    """Create a self-signed client certificate (DER) and key (PEM) unless valid ones exist.

    The certificate names ``application_uri``, which must equal the config's
    ``application_uri``; the server's administrator then trusts it (copies it to the server's
    trusted folder) once.
    """
    certificate.parent.mkdir(parents=True, exist_ok=True)
    private_key.parent.mkdir(parents=True, exist_ok=True)
    await cert_gen.setup_self_signed_certificate(
        private_key,
        certificate,
        application_uri,
        host_name or socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "ClusterBrain", "commonName": "ClusterBrain gateway"},
    )


def _now_us() -> int:
    return time.time_ns() // 1000


async def _first_of(*events: asyncio.Event, timeout: float | None) -> None:
    """Return when one of ``events`` is set or ``timeout`` passed."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class _Batcher:
    """Collects readings from asyncua's notification tasks; emits once per loop turn.

    asyncua delivers each monitored item of a publish response in its own task; they all run
    before a callback scheduled by the first of them, so one publish response becomes one batch.
    """

    def __init__(self, source: OpcUaSource, emit: Emit, on_data: Callable[[], None]) -> None:
        self._source = source
        self._emit = emit
        self._on_data = on_data
        self._pending: list[Reading] = []
        self._scheduled = False

    def add(self, reading: Reading) -> None:
        self._pending.append(reading)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._source._deliver(self._emit, batch)
            self._on_data()


class _Handler:
    """asyncua subscription handler: data changes to readings, status changes to a lost session."""

    def __init__(
        self, source: OpcUaSource, tags: dict[int, str], batcher: _Batcher, lost: asyncio.Event
    ) -> None:
        self._source = source
        self._tags = tags
        self._batcher = batcher
        self._lost = lost

    def datachange_notification(self, node: object, val: object, data: DataChangeNotif) -> None:
        item = data.monitored_item
        tag = self._tags.get(int(item.ClientHandle))
        if tag is None or item.Value is None:
            return
        reading = self._source._reading(tag, item.Value, _now_us())
        if reading is not None:
            self._batcher.add(reading)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        # BadShutdown, BadTimeout (lifetime expired) and the like: the subscription is gone.
        code = status.Status.value if status.Status is not None else 0x80000000
        if quality_from_status(code) is Quality.BAD and not self._lost.is_set():
            self._source._note_error(f"subscription ended: {_status_name(code)}")
            self._lost.set()


class OpcUaSource:
    """Reads one OPC UA server for the gateway (a ``FieldSource``)."""

    def __init__(self, config: OpcUaConfig) -> None:
        self.config = config
        self.name = config.name
        self.counters = SourceCounters()
        self.counters.extra.update(dict.fromkeys(_EXTRA_COUNTERS, 0))
        self._client: Client | None = None
        self._node_ids: dict[str, ua.NodeId] = {}
        self._types: dict[str, str] = {}
        self._live: set[Subscription] = set()
        self._sessions = 0

    # -- FieldSource ------------------------------------------------------------------------

    async def run(self, emit: Emit, stop: asyncio.Event) -> None:
        """Connect, read, and on any loss reconnect after a backoff, until ``stop`` is set."""
        backoff = Backoff(self.config.reconnect_initial_s, self.config.reconnect_max_s)
        while not stop.is_set():
            client = await self._connect()
            if client is not None:
                try:
                    await self._serve(client, emit, stop, backoff.reset)
                except Exception as exc:  # a connector never raises out of run
                    self._record_failure(exc)
                finally:
                    await self._disconnect(client)
            if stop.is_set() or await backoff.wait(stop):
                return

    async def write(self, tag: str, value: Value) -> None:
        """Write a command value to the tag's variable; WriteRefused says why when it fails."""
        node = self.config.node(tag)
        if node is None:
            self._refuse(f"unknown tag {tag!r}: it is not in the node list of {self.name}")
        if not node.writable:
            self._refuse(f"tag {tag!r} is not writable (writable: true in its node entry)")
        reason = check_range(value, node.min_value, node.max_value)
        if reason is not None:
            self._refuse(f"{tag}: {reason}")
        client, node_id = self._client, self._node_ids.get(tag)
        if client is None or client.state is not UaClientState.CONNECTED or node_id is None:
            self._refuse(f"{tag}: not connected to {self.config.endpoint}")
        status = await self._send_write(client, tag, node_id, value)
        if quality_from_status(status.value) is Quality.BAD:
            self._refuse(f"{tag}: the server refused the write: {status.name}")
        self.counters.writes += 1

    # -- connection -------------------------------------------------------------------------

    async def _connect(self) -> Client | None:
        config = self.config
        try:
            client = await open_client(
                config.endpoint,
                security=config.security,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                application_uri=config.application_uri,
                timeout_s=config.request_timeout_s,
                keepalive_s=config.keepalive_s,
            )
        except Exception as exc:
            self._record_failure(exc)
            return None
        try:
            self._node_ids = await self._resolve(client)
        except Exception as exc:
            self._record_failure(exc)
            await close_client(client, config.request_timeout_s)
            return None
        self._sessions += 1
        if self._sessions > 1:
            self.counters.reconnects += 1
        self._client, self._types = client, {}
        self.counters.connected = True
        _log.info("%s: connected to %s", self.name, config.endpoint)
        return client

    async def _resolve(self, client: Client) -> dict[str, ua.NodeId]:
        """Node ids of this session; ``nsu=`` ids need the server's current namespace array."""
        needs_uris = any(node.node_id.startswith("nsu=") for node in self.config.nodes)
        namespaces = await client.get_namespace_array() if needs_uris else []
        resolved: dict[str, ua.NodeId] = {}
        for node in self.config.nodes:
            try:
                resolved[node.tag] = parse_node_id(node.node_id, namespaces)
            except (UaError, ValueError) as exc:
                self._note_error(f"{node.tag}: node id {node.node_id!r}: {exc}")
        return resolved

    async def _disconnect(self, client: Client) -> None:
        self._client = None
        self.counters.connected = False
        # The subscriptions die with the session: forget them before building the next one.
        self._live.clear()
        self.counters.extra["subscriptions"] = 0
        await close_client(client, self.config.request_timeout_s)

    async def _serve(
        self, client: Client, emit: Emit, stop: asyncio.Event, on_data: Callable[[], None]
    ) -> None:
        lost = asyncio.Event()

        async def connection_lost(exc: Exception) -> None:
            if not lost.is_set():
                self._record_failure(exc)
                lost.set()

        client.connection_lost_callback = connection_lost
        if self.config.mode == "subscription":
            if await self._subscribe(client, emit, lost, on_data):
                await self._until_lost(client, stop, lost)
                return
            self.counters.extra["poll_fallbacks"] += 1
        await self._poll(client, emit, stop, lost, on_data)

    async def _until_lost(self, client: Client, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not (stop.is_set() or lost.is_set()):
            await _first_of(stop, lost, timeout=1.0)
            # A dropped socket shows in the state before asyncua's supervisor reports it.
            gone = client.state is not UaClientState.CONNECTED
            if gone and not (stop.is_set() or lost.is_set()):
                self._note_error(f"connection to {self.config.endpoint} lost")
                lost.set()
        if lost.is_set():
            _log.warning("%s: %s; reconnecting", self.name, self.counters.last_error)

    # -- subscription -----------------------------------------------------------------------

    def _subscription_parameters(self) -> ua.CreateSubscriptionParameters:
        interval = self.config.publishing_interval_ms
        keepalive = max(1, math.ceil(self.config.keepalive_s * 1000.0 / interval))
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = interval
        params.RequestedMaxKeepAliveCount = keepalive
        params.RequestedLifetimeCount = 10 * keepalive
        params.MaxNotificationsPerPublish = 10_000
        params.PublishingEnabled = True
        params.Priority = 0
        return params

    def _monitored_item_requests(
        self,
    ) -> tuple[list[ua.MonitoredItemCreateRequest], dict[int, str]]:
        requests, tags = [], {}
        for handle, node in enumerate(self.config.nodes, start=1):
            node_id = self._node_ids.get(node.tag)
            if node_id is None:
                continue
            parameters = ua.MonitoringParameters()
            parameters.ClientHandle = handle
            parameters.SamplingInterval = node.sampling_interval_ms
            parameters.QueueSize = 1
            parameters.DiscardOldest = True
            if node.deadband:
                parameters.Filter = ua.DataChangeFilter(
                    Trigger=ua.DataChangeTrigger.StatusValue,
                    DeadbandType=ua.DeadbandType.Absolute,
                    DeadbandValue=node.deadband,
                )
            request = ua.MonitoredItemCreateRequest()
            request.ItemToMonitor = ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
            request.MonitoringMode = ua.MonitoringMode.Reporting
            request.RequestedParameters = parameters
            requests.append(request)
            tags[handle] = node.tag
        return requests, tags

    async def _subscribe(
        self, client: Client, emit: Emit, lost: asyncio.Event, on_data: Callable[[], None]
    ) -> bool:
        """Create the one subscription of this session; False when the server cannot."""
        requests, tags = self._monitored_item_requests()
        handler = _Handler(self, tags, _Batcher(self, emit, on_data), lost)
        try:
            subscription = await client.create_subscription(
                self._subscription_parameters(), handler
            )
        except UaStatusCodeError as exc:
            self._note_error(f"no subscription ({_status_name(exc.code)}); polling instead")
            return False
        self._live.add(subscription)
        self.counters.extra["subscriptions"] = len(self._live)
        try:
            results = await subscription.create_monitored_items(requests)
        except UaStatusCodeError as exc:
            self._note_error(f"no monitored items ({_status_name(exc.code)}); polling instead")
            await self._drop(subscription)
            return False
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, ua.StatusCode):
                tag = tags[int(request.RequestedParameters.ClientHandle)]
                self._note_error(f"{tag}: cannot monitor: {result.name}")
        return True

    async def _drop(self, subscription: Subscription) -> None:
        self._live.discard(subscription)
        self.counters.extra["subscriptions"] = len(self._live)
        try:
            await asyncio.wait_for(subscription.delete(), self.config.request_timeout_s)
        except (Exception, TimeoutError):
            _log.debug("deleting a subscription failed", exc_info=True)

    # -- polling ----------------------------------------------------------------------------

    def _read_parameters(self) -> tuple[ua.ReadParameters, list[OpcUaNode]]:
        params = ua.ReadParameters()
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        nodes = [node for node in self.config.nodes if node.tag in self._node_ids]
        params.NodesToRead = [
            ua.ReadValueId(NodeId=self._node_ids[node.tag], AttributeId=AttributeIds.Value)
            for node in nodes
        ]
        return params, nodes

    async def _poll(
        self,
        client: Client,
        emit: Emit,
        stop: asyncio.Event,
        lost: asyncio.Event,
        on_data: Callable[[], None],
    ) -> None:
        """Read every node in one request per interval; send what changed."""
        params, nodes = self._read_parameters()
        interval = self.config.publishing_interval_ms / 1000.0
        last: dict[str, tuple[Value | None, Quality]] = {}
        loop = asyncio.get_running_loop()
        while not (stop.is_set() or lost.is_set()):
            started = loop.time()
            try:
                values = await asyncio.wait_for(
                    client.uaclient.read(params), self.config.request_timeout_s
                )
            except (Exception, TimeoutError) as exc:
                self._record_failure(exc)
                return
            received = _now_us()
            batch = []
            for node, data_value in zip(nodes, values, strict=True):
                reading = self._reading(node.tag, data_value, received)
                if reading is None:
                    continue
                current = (reading.value, reading.quality)
                if changed(last.get(node.tag), current, node.deadband):
                    last[node.tag] = current
                    batch.append(reading)
            self._deliver(emit, batch)
            on_data()
            await _first_of(stop, lost, timeout=max(0.0, interval - (loop.time() - started)))

    # -- readings, writes, counters ---------------------------------------------------------

    def _reading(self, tag: str, data_value: ua.DataValue, received_us: int) -> Reading | None:
        """The reading of one data value; None (counted) when its value does not fit one."""
        raw: Any = data_value.Value.Value if data_value.Value is not None else None
        supported, value = reading_value(raw)
        if not supported:
            self.counters.extra["unsupported_values"] += 1
            return None
        status = data_value.StatusCode.value if data_value.StatusCode is not None else 0
        ts_us = timestamp_us(data_value.SourceTimestamp, data_value.ServerTimestamp, received_us)
        return Reading(tag, ts_us, value, quality_from_status(status))

    def _deliver(self, emit: Emit, batch: list[Reading]) -> None:
        if not batch:
            return
        try:
            emit(batch)
        except Exception as exc:
            self.counters.extra["emit_errors"] += 1
            self._note_error(f"emit failed: {type(exc).__name__}: {exc}")
            return
        self.counters.reads += len(batch)

    async def _data_type(self, client: Client, tag: str, node_id: ua.NodeId) -> str:
        """Built-in type name of the tag's variable, read once per session."""
        if tag not in self._types:
            variant_type = await client.get_node(node_id).read_data_type_as_variant_type()
            self._types[tag] = variant_type.name
        return self._types[tag]

    async def _send_write(
        self, client: Client, tag: str, node_id: ua.NodeId, value: Value
    ) -> ua.StatusCode:
        timeout = self.config.request_timeout_s
        try:
            type_name = await asyncio.wait_for(self._data_type(client, tag, node_id), timeout)
            converted = coerce(value, type_name)
            data_value = ua.DataValue(ua.Variant(converted, getattr(ua.VariantType, type_name)))
            results = await asyncio.wait_for(
                client.uaclient.write_attributes([node_id], [data_value], AttributeIds.Value),
                timeout,
            )
        except CommandRejected as exc:
            self._refuse(f"{tag}: {exc}")
        except (Exception, TimeoutError) as exc:
            _, message = describe_error(exc, self.config.endpoint)
            self._refuse(f"{tag}: write failed: {message}")
        return results[0]

    def _refuse(self, reason: str) -> NoReturn:
        self.counters.write_errors += 1
        raise WriteRefused(reason)

    def _note_error(self, message: str) -> None:
        self.counters.errors += 1
        self.counters.last_error = message

    def _record_failure(self, exc: BaseException) -> None:
        kind, message = describe_error(exc, self.config.endpoint)
        if kind == "auth":
            self.counters.extra["auth_failures"] += 1
        elif kind == "security":
            self.counters.extra["security_failures"] += 1
        if message != self.counters.last_error:
            _log.warning("%s: %s", self.name, message)
        self._note_error(message)
