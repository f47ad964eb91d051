"""The asyncua side of the connector: opening and closing sessions, parsing node ids.

Internal to this package: these functions take and return asyncua types, which stay out of the
public API of ``client`` and ``browse``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError

from clusterbrain.connectors.opcua.config import DEFAULT_APPLICATION_URI, OpcUaSecurity

_log = logging.getLogger(__name__)


async def open_client(
    endpoint: str,
    *,
    security: OpcUaSecurity | None = None,
    username: str | None = None,
    password: str | None = None,
    application_uri: str = DEFAULT_APPLICATION_URI,
    timeout_s: float = 5.0,
    keepalive_s: float = 10.0,
) -> Client:
    """A connected asyncua client with an activated session."""
    client = Client(endpoint, timeout=timeout_s, watchdog_intervall=keepalive_s)
    client.application_uri = application_uri
    client.name = client.description = "ClusterBrain gateway"
    client.product_uri = "urn:clusterbrain"
    # Short enough that the sessions of a gateway that vanished free the server's few slots soon;
    # publish requests and the keep-alive probe keep a live one open.
    client.session_timeout = int(max(60_000.0, 4000.0 * keepalive_s))
    if username is not None:
        client.set_user(username)
    if password is not None:
        client.set_password(password)
    try:
        if security is not None:
            await client.set_security(
                security_policies.SecurityPolicyBasic256Sha256,
                certificate=str(security.certificate),
                private_key=str(security.private_key),
                server_certificate=(
                    str(security.server_certificate) if security.server_certificate else None
                ),
                mode=getattr(ua.MessageSecurityMode, security.mode),
            )
        await asyncio.wait_for(client.connect(), 3 * timeout_s)
    except BaseException:
        # A connect cut short by the timeout (or a cancel) skips asyncua's own socket cleanup.
        client.disconnect_socket()
        raise
    return client


async def close_client(client: Client, timeout_s: float) -> None:
    """Close the session (and its subscriptions) when the server still listens; never raise."""
    try:
        await asyncio.wait_for(client.disconnect(), timeout_s)
    except (Exception, TimeoutError):
        _log.debug("closing the OPC UA session failed", exc_info=True)
        client.disconnect_socket()


def parse_node_id(text: str, namespaces: Sequence[str]) -> ua.NodeId:
    """The node id of ``text``; an ``nsu=`` URI is looked up in the server's namespace array."""
    parsed = ua.NodeId.from_string(text)
    if isinstance(parsed, ua.ExpandedNodeId) and parsed.NamespaceUri:
        try:
            index = list(namespaces).index(parsed.NamespaceUri)
        except ValueError:
            raise UaError(f"the server has no namespace {parsed.NamespaceUri}") from None
        return ua.NodeId(parsed.Identifier, ua.Int16(index), parsed.NodeIdType)
    return parsed
