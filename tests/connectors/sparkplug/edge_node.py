"""A scripted Sparkplug B edge node for the tests: builds its messages with the seq it owes."""

from __future__ import annotations

from dataclasses import dataclass

from clusterbrain.connectors.sparkplug import codec
from clusterbrain.connectors.sparkplug.codec import MessageType, Metric

Message = tuple[str, bytes]


@dataclass
class EdgeNode:
    group: str = "plant1"
    edge_node: str = "gw1"
    bd_seq: int = 0
    seq: int = 0
    timestamp_ms: int = 1_700_000_000_000

    @property
    def node_key(self) -> str:
        return f"{self.group}/{self.edge_node}"

    def _next(self) -> int:
        self.seq = (self.seq + 1) % 256
        return self.seq

    def _topic(self, message_type: MessageType, device: str | None = None) -> str:
        return codec.topic(self.group, message_type, self.edge_node, device)

    def nbirth(self, *metrics: Metric, seq: int = 0) -> Message:
        self.seq = seq
        payload = codec.encode_nbirth(self.bd_seq, metrics, timestamp_ms=self.timestamp_ms, seq=seq)
        return self._topic(MessageType.NBIRTH), payload

    def dbirth(self, device: str, *metrics: Metric) -> Message:
        payload = codec.encode_dbirth(metrics, seq=self._next(), timestamp_ms=self.timestamp_ms)
        return self._topic(MessageType.DBIRTH, device), payload

    def ndata(self, *metrics: Metric) -> Message:
        payload = codec.encode_data(metrics, seq=self._next(), timestamp_ms=self.timestamp_ms)
        return self._topic(MessageType.NDATA), payload

    def ddata(self, device: str, *metrics: Metric) -> Message:
        payload = codec.encode_data(metrics, seq=self._next(), timestamp_ms=self.timestamp_ms)
        return self._topic(MessageType.DDATA, device), payload

    def ddeath(self, device: str) -> Message:
        payload = codec.encode_ddeath(seq=self._next(), timestamp_ms=self.timestamp_ms)
        return self._topic(MessageType.DDEATH, device), payload

    def ndeath(self, bd_seq: int | None = None) -> Message:
        payload = codec.encode_ndeath(self.bd_seq if bd_seq is None else bd_seq)
        return self._topic(MessageType.NDEATH), payload
