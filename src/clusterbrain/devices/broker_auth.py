"""Per-device broker credentials and ACLs.

The platform keeps only hashes of device secrets, so the broker must learn a plaintext secret at the
moment it is created or rotated; that is the whole job of a `BrokerAuth`. With Mosquitto this is
done through the dynamic-security plugin's control topic, so that creation, rotation and
revocation take effect without restarting the broker.

How the rules are expressed in dynsec (2.0.11 has no ``%u``/``%c`` substitution in role ACLs, so
every device gets its own role ``cb-device-<id>`` with literal topics):

- a device may publish to ``cb/v1/<id>/telemetry``, ``.../events``, ``.../commands/ack``, and
  subscribe to (and receive) ``cb/v1/<id>/commands``; a lower-priority ``#`` deny in the same role
  refuses everything else whatever the broker's default ACL access is;
- the service (ingest) account ``cb-service-<username>`` may subscribe to ``cb/v1/+/<kind>`` and
  ``$share/+/cb/v1/+/<kind>`` for telemetry, events and commands/ack, and publish
  ``cb/v1/+/commands``; as the Sparkplug B host it may subscribe to ``spBv1.0/#`` and publish
  ``spBv1.0/+/NCMD/+`` and its STATE on ``spBv1.0/STATE/+``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from clusterbrain.platform.errors import Conflict, InvalidInput, Unavailable

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
DEVICE_ROLE_PREFIX = "cb-device-"
SERVICE_ROLE_PREFIX = "cb-service-"
EDGE_NODE_ROLE_PREFIX = "cb-sparkplug-"
DEVICE_PUBLISH_KINDS = ("telemetry", "events", "commands/ack")
SERVICE_SUBSCRIBE_KINDS = ("telemetry", "events", "commands/ack")
ALLOW_PRIORITY = 10
DENY_PRIORITY = 0

Command = dict[str, Any]
Response = dict[str, Any]


class BrokerAuthUnavailable(Unavailable):
    """The broker, or its dynamic-security plugin, did not answer in time."""


class BrokerCommandRefused(Conflict):
    """The broker answered a control command with an error we cannot treat as 'already done'."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"broker refused {command}: {error}")
        self.command = command
        self.error = error


class BrokerAuth(Protocol):
    """What device registration needs from the broker; implementations must be idempotent."""

    def upsert_device(self, device_id: str, secret: str) -> None:
        """Create the device's broker identity, or set its new secret (rotation)."""

    def revoke_device(self, device_id: str) -> None:
        """Remove the identity; a connected device is disconnected and cannot reconnect."""

    def ensure_service_account(self, username: str, password: str) -> None:
        """Create or repair the ingest account that reads all devices and sends commands."""

    def upsert_edge_node(self, group_id: str, edge_node_id: str, secret: str) -> None:
        """Create a Sparkplug edge node's identity limited to its group and node, or set its
        new secret."""

    def revoke_edge_node(self, group_id: str, edge_node_id: str) -> None:
        """Remove a Sparkplug edge node's identity; a connected node is disconnected."""

    def close(self) -> None:
        """Release the admin connection."""


class NullBrokerAuth:
    """For brokers that authenticate some other way (or not at all, as in a local demo)."""

    def upsert_device(self, device_id: str, secret: str) -> None:
        return None

    def revoke_device(self, device_id: str) -> None:
        return None

    def ensure_service_account(self, username: str, password: str) -> None:
        return None

    def upsert_edge_node(self, group_id: str, edge_node_id: str, secret: str) -> None:
        raise BrokerAuthUnavailable(
            "the broker does not take identities from the platform "
            "(CLUSTERBRAIN_BROKER_AUTH=none): Sparkplug edge node credentials need dynsec"
        )

    def revoke_edge_node(self, group_id: str, edge_node_id: str) -> None:
        return None

    def close(self) -> None:
        return None


# --- ACLs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acl:
    acltype: str
    topic: str
    allow: bool = True
    priority: int = ALLOW_PRIORITY

    def add_command(self, rolename: str) -> Command:
        return {
            "command": "addRoleACL",
            "rolename": rolename,
            "acltype": self.acltype,
            "topic": self.topic,
            "allow": self.allow,
            "priority": self.priority,
        }


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + device_id


def service_role(username: str) -> str:
    return SERVICE_ROLE_PREFIX + username


def device_acls(device_id: str) -> list[Acl]:
    """Own topics only; the trailing denies make the role safe under a permissive default."""
    base = f"cb/v1/{device_id}"
    acls = [Acl("publishClientSend", f"{base}/{kind}") for kind in DEVICE_PUBLISH_KINDS]
    # a gateway publishes the devices it reads under its own id; ingest checks the binding
    acls += [Acl("publishClientSend", f"{base}/gateway/+/{kind}") for kind in DEVICE_PUBLISH_KINDS]
    acls += [
        Acl("subscribePattern", f"{base}/commands"),
        Acl("publishClientReceive", f"{base}/commands"),
        Acl("subscribePattern", f"{base}/gateway/+/commands"),
        Acl("publishClientReceive", f"{base}/gateway/+/commands"),
        Acl("publishClientSend", "#", allow=False, priority=DENY_PRIORITY),
        Acl("subscribePattern", "#", allow=False, priority=DENY_PRIORITY),
    ]
    return acls


def service_acls() -> list[Acl]:
    """Read every device's upstream topics, plainly or as an MQTT 5 shared subscription
    (dynsec 2.0.11 checks the full ``$share/<group>/...`` filter), and send commands."""
    acls: list[Acl] = []
    for kind in SERVICE_SUBSCRIBE_KINDS:
        for topic in (f"cb/v1/+/{kind}", f"cb/v1/+/gateway/+/{kind}"):
            acls += [
                Acl("subscribePattern", topic),
                Acl("subscribePattern", f"$share/+/{topic}"),
                Acl("publishClientReceive", topic),
            ]
    acls.append(Acl("publishClientSend", "cb/v1/+/commands"))
    acls.append(Acl("publishClientSend", "cb/v1/+/gateway/+/commands"))
    acls += sparkplug_service_acls()
    return acls


def edge_node_username(group_id: str, edge_node_id: str) -> str:
    """The broker login of a Sparkplug edge node: its own topic prefix, which no '/' in either
    id can make ambiguous.

    >>> edge_node_username("plant1", "gw-3")
    'spBv1.0/plant1/gw-3'
    """
    return f"spBv1.0/{group_id}/{edge_node_id}"


def edge_node_role(group_id: str, edge_node_id: str) -> str:
    return EDGE_NODE_ROLE_PREFIX + edge_node_username(group_id, edge_node_id)


def edge_node_acls(group_id: str, edge_node_id: str) -> list[Acl]:
    """A Sparkplug edge node: its node's and devices' messages (BIRTH, DATA, DEATH, also as its
    will), the commands to them, and the host applications' STATE; nothing else."""
    base = f"spBv1.0/{group_id}"
    return [
        Acl("publishClientSend", f"{base}/+/{edge_node_id}"),
        Acl("publishClientSend", f"{base}/+/{edge_node_id}/+"),
        Acl("subscribePattern", f"{base}/NCMD/{edge_node_id}"),
        Acl("publishClientReceive", f"{base}/NCMD/{edge_node_id}"),
        Acl("subscribePattern", f"{base}/DCMD/{edge_node_id}/+"),
        Acl("publishClientReceive", f"{base}/DCMD/{edge_node_id}/+"),
        Acl("subscribePattern", "spBv1.0/STATE/+"),
        Acl("publishClientReceive", "spBv1.0/STATE/+"),
        Acl("publishClientSend", "#", allow=False, priority=DENY_PRIORITY),
        Acl("subscribePattern", "#", allow=False, priority=DENY_PRIORITY),
    ]


def sparkplug_service_acls() -> list[Acl]:
    """Sparkplug B host: every edge node's messages (one plain subscriber, never ``$share``, as
    seq is per node), rebirth requests (NCMD) to edge nodes and its own STATE birth and death."""
    return [
        Acl("subscribePattern", "spBv1.0/#"),
        Acl("publishClientReceive", "spBv1.0/#"),
        Acl("publishClientSend", "spBv1.0/+/NCMD/+"),
        Acl("publishClientSend", "spBv1.0/STATE/+"),
    ]


def check_identity(name: str, what: str) -> None:
    """An identity becomes a topic level and a role name: MQTT wildcards or '/' would widen
    the ACL to other devices' topics."""
    if not name or name.startswith("$") or any(ch in name for ch in "/+#\0"):
        raise InvalidInput(f"{what} {name!r} cannot be used as an MQTT identity", field=what)


# --- dynsec control client --------------------------------------------------------------------


@dataclass
class _Pending:
    expected: int
    responses: dict[int, Response] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


class DynsecControlClient:
    """One MQTT connection to the dynsec control topic; connection, reconnection and timeouts
    live here so that the `BrokerAuth` above it reads as a list of commands.

    Connects lazily, so constructing it needs no broker. Responses are published to every admin
    client on the broker, so each command carries ``correlationData`` and foreign replies are
    ignored.
    """

    def __init__(
        self, host: str, port: int, username: str, password: str, *, timeout: float = 5.0
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._username = username
        self._password = password
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._ready = threading.Event()
        self._refused: str | None = None
        self._client: mqtt.Client | None = None

    def execute(self, commands: Sequence[Command]) -> list[Response]:
        """Send commands in one message; return their responses in the same order."""
        client = self._connected_client()
        request_id = uuid.uuid4().hex
        pending = _Pending(expected=len(commands))
        tagged = [{**cmd, "correlationData": f"{request_id}/{i}"} for i, cmd in enumerate(commands)]
        with self._pending_lock:
            self._pending[request_id] = pending
        try:
            client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            if not pending.done.wait(self.timeout):
                raise BrokerAuthUnavailable(
                    f"no reply from the dynamic-security plugin at {self._where()} within "
                    f"{self.timeout}s (is the plugin loaded and the admin account allowed?)"
                )
        finally:
            with self._pending_lock:
                self._pending.pop(request_id, None)
        return [pending.responses[i] for i in range(len(commands))]

    def credentials_accepted(self, username: str, password: str) -> bool:
        """Probe a CONNECT with other credentials, on a throwaway connection."""
        accepted = threading.Event()
        answered = threading.Event()

        def on_connect(_c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
            if not rc.is_failure:
                accepted.set()
            answered.set()

        probe = self._new_client(f"cb-probe-{uuid.uuid4().hex[:12]}", username, password)
        probe.reconnect_delay_set(60, 60)
        probe.on_connect = on_connect
        self._open(probe)
        try:
            if not answered.wait(self.timeout):
                raise BrokerAuthUnavailable(f"no CONNACK from {self._where()}")
        finally:
            self._shut(probe)
        return accepted.is_set()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._ready.clear()
        if client is not None:
            self._shut(client)

    def _connected_client(self) -> mqtt.Client:
        with self._lock:
            if self._client is None:
                self._client = self._start_client()
            client = self._client
        if not self._ready.wait(self.timeout):
            self._fail_connect(f"could not reach the MQTT broker at {self._where()}")
        if self._refused is not None:
            self._fail_connect(f"the broker at {self._where()} refused the admin: {self._refused}")
        return client

    def _fail_connect(self, message: str) -> None:
        self.close()
        raise BrokerAuthUnavailable(message)

    def _start_client(self) -> mqtt.Client:
        self._ready.clear()
        self._refused = None
        client = self._new_client(
            f"cb-dynsec-{uuid.uuid4().hex[:12]}", self._username, self._password
        )
        client.reconnect_delay_set(1, 2)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._open(client)
        return client

    def _new_client(self, client_id: str, username: str, password: str) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.username_pw_set(username, password)
        client.connect_timeout = self.timeout
        return client

    def _open(self, client: mqtt.Client) -> None:
        try:
            client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise BrokerAuthUnavailable(f"cannot connect to {self._where()}: {exc}") from exc
        client.loop_start()

    @staticmethod
    def _shut(client: mqtt.Client) -> None:
        client.disconnect()
        client.loop_stop()

    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._refused = str(rc)
            self._ready.set()  # wakes the waiter, who reports the refusal
            return
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any
    ) -> None:
        if codes and codes[0].is_failure:
            self._refused = f"subscription to {RESPONSE_TOPIC} refused ({codes[0]})"
        self._ready.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: ReasonCode, _p: Any) -> None:
        self._ready.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            return
        for response in responses:
            self._deliver(response)

    def _deliver(self, response: Response) -> None:
        request_id, _, index = str(response.get("correlationData", "")).partition("/")
        with self._pending_lock:
            pending = self._pending.get(request_id)
            if pending is None or not index.isdigit():
                return
            pending.responses[int(index)] = response
            if len(pending.responses) >= pending.expected:
                pending.done.set()


# --- dynsec BrokerAuth ------------------------------------------------------------------------


def raise_unexpected(responses: Sequence[Response], tolerated: frozenset[str]) -> None:
    """Errors meaning 'already so' keep the operations idempotent; any other is a refusal."""
    for response in responses:
        error = response.get("error")
        if error and error not in tolerated:
            raise BrokerCommandRefused(str(response.get("command")), str(error))


ALREADY_EXISTS = frozenset({"Role already exists", "ACL with this topic already exists"})
CLIENT_EXISTS = frozenset({"Client already exists"})
ALREADY_GONE = frozenset({"Client not found", "Role not found"})


class DynsecBrokerAuth:
    """`BrokerAuth` for Mosquitto's dynamic-security plugin, one role per device."""

    def __init__(
        self,
        host: str,
        port: int,
        admin_username: str,
        admin_password: str,
        *,
        timeout: float = 5.0,
    ) -> None:
        self._control = DynsecControlClient(
            host, port, admin_username, admin_password, timeout=timeout
        )

    def upsert_device(self, device_id: str, secret: str) -> None:
        """Create, or set the new secret; setting it kicks a connected device (2.0.11), which
        is what rotation wants: the old secret's session ends."""
        check_identity(device_id, "device_id")
        self._upsert(device_id, secret, device_role(device_id), device_acls(device_id))

    def revoke_device(self, device_id: str) -> None:
        """deleteClient kicks a connected client in 2.0.11; the role goes too."""
        check_identity(device_id, "device_id")
        responses = self._control.execute(
            [
                {"command": "deleteClient", "username": device_id},
                {"command": "deleteRole", "rolename": device_role(device_id)},
            ]
        )
        raise_unexpected(responses, ALREADY_GONE)

    def ensure_service_account(self, username: str, password: str) -> None:
        """Idempotent and gentle: the password is only set when it does not already work, so
        an ingest worker starting up does not kick its running siblings."""
        check_identity(username, "username")
        role = service_role(username)
        created = self._create(username, password, role, service_acls())
        if created:
            return
        keep = self._control.credentials_accepted(username, password)
        self._repair(username, None if keep else password, role)

    def upsert_edge_node(self, group_id: str, edge_node_id: str, secret: str) -> None:
        for name, what in ((group_id, "group_id"), (edge_node_id, "edge_node_id")):
            check_identity(name, what)
        username = edge_node_username(group_id, edge_node_id)
        role = edge_node_role(group_id, edge_node_id)
        self._upsert(username, secret, role, edge_node_acls(group_id, edge_node_id))

    def revoke_edge_node(self, group_id: str, edge_node_id: str) -> None:
        responses = self._control.execute(
            [
                {"command": "deleteClient", "username": edge_node_username(group_id, edge_node_id)},
                {"command": "deleteRole", "rolename": edge_node_role(group_id, edge_node_id)},
            ]
        )
        raise_unexpected(responses, ALREADY_GONE)

    def close(self) -> None:
        self._control.close()

    def _upsert(self, username: str, password: str, role: str, acls: Sequence[Acl]) -> None:
        if not self._create(username, password, role, acls):
            self._repair(username, password, role)

    def _create(self, username: str, password: str, role: str, acls: Sequence[Acl]) -> bool:
        """Ensure the role and its ACLs, then try to create the client; False if it existed."""
        commands: list[Command] = [{"command": "createRole", "rolename": role}]
        commands += [acl.add_command(role) for acl in acls]
        commands.append(
            {
                "command": "createClient",
                "username": username,
                "password": password,
                "roles": [{"rolename": role, "priority": ALLOW_PRIORITY}],
            }
        )
        responses = self._control.execute(commands)
        raise_unexpected(responses, ALREADY_EXISTS | CLIENT_EXISTS)
        return "error" not in responses[-1]

    def _repair(self, username: str, password: str | None, role: str) -> None:
        """Existing client: make sure it has its role and is enabled, then set the password
        last, so that a kicked client reconnects to a complete identity."""
        responses = self._control.execute([{"command": "getClient", "username": username}])
        raise_unexpected(responses, frozenset())
        commands: list[Command] = []
        if role not in _role_names(responses[0]):
            # addClientRole answers "Internal error" for a role the client already has (2.0.11)
            commands.append(
                {
                    "command": "addClientRole",
                    "username": username,
                    "rolename": role,
                    "priority": ALLOW_PRIORITY,
                }
            )
        commands.append({"command": "enableClient", "username": username})
        if password is not None:
            commands.append(
                {"command": "setClientPassword", "username": username, "password": password}
            )
        raise_unexpected(self._control.execute(commands), frozenset())


def _role_names(get_client_response: Response) -> set[str]:
    client = get_client_response.get("data", {}).get("client", {})
    return {str(role.get("rolename")) for role in client.get("roles", [])}
