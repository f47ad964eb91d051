"""Configuration of one OPC UA server in the gateway: endpoint, security, mode and node list.

Plain pydantic models, loaded from the gateway's YAML; nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from clusterbrain.devices.schemas import TAG_NAME_PATTERN

NODE_ID_PATTERN = r"^(ns=\d+;|nsu=[^;]+;)?(i=\d+|s=.+|g=[0-9A-Fa-f-]{36}|b=.+)$"
"""The string form of a node id (Part 6, 5.3.1.10), with either a namespace index or its URI."""

DEFAULT_APPLICATION_URI = "urn:clusterbrain:gateway"
"""The gateway's OPC UA application URI; a client certificate must name the same URI."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpcUaSecurity(_Frozen):
    """A signed (and usually encrypted) secure channel with the gateway's own certificate."""

    policy: Literal["Basic256Sha256"] = "Basic256Sha256"
    mode: Literal["SignAndEncrypt", "Sign"] = "SignAndEncrypt"
    certificate: Path
    """The gateway's application instance certificate (DER or PEM)."""
    private_key: Path
    """Its private key (PEM or DER)."""
    server_certificate: Path | None = None
    """Pin the server's certificate; when absent it is taken from the server's endpoint list."""


class OpcUaNode(_Frozen):
    """One variable read as one tag."""

    tag: str = Field(pattern=TAG_NAME_PATTERN)
    node_id: str = Field(pattern=NODE_ID_PATTERN, examples=["ns=2;s=IMM1.Production.CycleTime"])
    sampling_interval_ms: float = Field(default=1000.0, ge=0)
    """How often the server samples the value; 0 asks for its fastest rate."""
    deadband: float | None = Field(default=None, ge=0)
    """Absolute deadband: a numeric change of at most this much is not reported."""
    writable: bool = False
    """Commands may write this tag; everything else is refused before it reaches the server."""
    min_value: float | None = None
    max_value: float | None = None
    """Range a command value must lie in (inclusive); checked before sending."""

    @model_validator(mode="after")
    def _range_in_order(self) -> Self:
        low, high = self.min_value, self.max_value
        if low is not None and high is not None and low > high:
            raise ValueError(f"{self.tag}: min_value is above max_value")
        return self


class OpcUaConfig(_Frozen):
    """One OPC UA server the gateway reads."""

    name: str = Field(min_length=1)
    endpoint: str = Field(pattern=r"^opc\.tcp://", examples=["opc.tcp://192.168.1.20:4840"])
    security: OpcUaSecurity | None = None
    username: str | None = None
    password: SecretStr | None = None
    application_uri: str = DEFAULT_APPLICATION_URI
    mode: Literal["subscription", "poll"] = "subscription"
    """``poll`` reads all nodes in one request per interval; also the fallback when the server
    cannot create a subscription."""
    publishing_interval_ms: float = Field(default=1000.0, gt=0)
    """Publishing interval of the subscription, and the interval between polls."""
    keepalive_s: float = Field(default=10.0, gt=0)
    """Silence after which the server's liveness is probed; a failed probe means reconnect."""
    request_timeout_s: float = Field(default=5.0, gt=0)
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    nodes: list[OpcUaNode] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        tags = [node.tag for node in self.nodes]
        duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
        if duplicates:
            raise ValueError(f"tags configured more than once: {', '.join(duplicates)}")
        if self.password is not None and self.username is None:
            raise ValueError("a password needs a username")
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError("reconnect_initial_s is above reconnect_max_s")
        return self

    def node(self, tag: str) -> OpcUaNode | None:
        """The node configured for ``tag``."""
        return next((node for node in self.nodes if node.tag == tag), None)
