"""The pure parts of the OPC UA connector: quality, timestamps, values, commands, config."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from asyncua.ua.status_codes import StatusCodes
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from clusterbrain.connectors.opcua.commands import (
    INTEGER_RANGES,
    CommandRejected,
    check_range,
    coerce,
)
from clusterbrain.connectors.opcua.config import OpcUaConfig, OpcUaNode
from clusterbrain.connectors.opcua.quality import (
    changed,
    epoch_us,
    quality_from_status,
    reading_value,
    timestamp_us,
)
from clusterbrain.telemetry.store import Quality

DOCS = Path(__file__).resolve().parents[3] / "docs" / "opcua.md"


def _codes(prefix: str) -> list[tuple[str, int]]:
    return [
        (name, value)
        for name, value in vars(StatusCodes).items()
        if name.startswith(prefix) and isinstance(value, int)
    ]


@pytest.mark.parametrize(
    ("prefix", "quality"),
    [("Good", Quality.GOOD), ("Uncertain", Quality.UNCERTAIN), ("Bad", Quality.BAD)],
)
def test_every_standard_status_code_maps_by_its_severity(prefix: str, quality: Quality) -> None:
    codes = _codes(prefix)
    assert len(codes) > 3
    assert {name: quality_from_status(value) for name, value in codes} == {
        name: quality for name, _ in codes
    }


def test_timestamps_prefer_source_then_server_then_receipt() -> None:
    source = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    server = source + timedelta(milliseconds=40)
    null = datetime(1601, 1, 1, tzinfo=UTC)
    assert timestamp_us(source, server, 1) == 1714550400123456
    assert timestamp_us(None, server, 1) == 1714550400163456
    assert timestamp_us(null, null, 1) == 1
    # A server in another time zone stamps the same instant.
    china = source.astimezone(timezone(timedelta(hours=8)))
    assert timestamp_us(china, None, 1) == epoch_us(source)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)))
def test_epoch_microseconds_are_exact(moment: datetime) -> None:
    us = epoch_us(moment)
    assert datetime(1970, 1, 1) + timedelta(microseconds=us) == moment


def test_values_a_reading_can_carry() -> None:
    assert reading_value(True) == (True, True)
    assert reading_value(7) == (True, 7)
    assert reading_value(-0.5) == (True, -0.5)
    assert reading_value("Automatic") == (True, "Automatic")
    assert reading_value(None) == (True, None)
    assert reading_value(float("inf")) == (True, None)
    for unsupported in ([1.0, 2.0], b"raw", datetime.now(UTC), {"Low": 0}, object()):
        assert reading_value(unsupported) == (False, None)


def test_polled_values_are_sent_on_change_beyond_the_deadband() -> None:
    good = Quality.GOOD
    sent, last = [], None
    for value in (100.0, 100.4, 100.9, 101.1, 101.1, 99.0):
        if changed(last, (value, good), 1.0):
            sent.append(value)
            last = (value, good)
    assert sent == [100.0, 101.1, 99.0]
    assert changed((5, good), (5, good), None) is False
    assert changed((5, good), (6, good), None) is True
    assert changed((5, good), (5, Quality.UNCERTAIN), 10.0) is True
    assert changed((False, good), (True, good), 10.0) is True


def test_command_ranges() -> None:
    assert check_range(350, 0, 350) is None
    assert check_range(0, 0, 350) is None
    assert "below the minimum 0" in (check_range(-1, 0, 350) or "")
    assert "above the maximum 350" in (check_range(350.5, 0, 350) or "")
    assert "not a number" in (check_range(True, 0, 1) or "")
    assert check_range(True, None, None) is None


@pytest.mark.parametrize("type_name", sorted(INTEGER_RANGES))
def test_integer_commands_fit_their_type(type_name: str) -> None:
    low, high = INTEGER_RANGES[type_name]
    assert coerce(high, type_name) == high
    assert coerce(float(low), type_name) == low
    with pytest.raises(CommandRejected, match="does not fit"):
        coerce(high + 1, type_name)
    with pytest.raises(CommandRejected, match="whole number"):
        coerce(1.5, type_name)


def test_other_command_conversions() -> None:
    assert coerce(215, "Double") == 215.0 and isinstance(coerce(215, "Double"), float)
    assert coerce(1, "Float") == 1.0
    assert coerce(0, "Boolean") is False and coerce(True, "Boolean") is True
    assert coerce(12.5, "String") == "12.5" and coerce(False, "String") == "false"
    with pytest.raises(CommandRejected, match="not a boolean"):
        coerce(2, "Boolean")
    with pytest.raises(CommandRejected, match="not a number"):
        coerce("hot", "Double")
    with pytest.raises(CommandRejected, match="DateTime cannot take"):
        coerce(1, "DateTime")


def _config(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "imm1",
        "endpoint": "opc.tcp://127.0.0.1:4840",
        "nodes": [{"tag": "cycle_time", "node_id": "ns=2;s=IMM1.Production.LastCycleTime"}],
    }
    return base | changes


def test_config_defaults_and_node_id_forms() -> None:
    config = OpcUaConfig.model_validate(_config())
    assert config.mode == "subscription" and config.security is None
    assert config.nodes[0].sampling_interval_ms == 1000.0 and not config.nodes[0].writable
    for node_id in ("ns=2;i=1234", "i=2258", "nsu=urn:clusterbrain:sim:machines;s=IMM1.X"):
        assert OpcUaNode(tag="t", node_id=node_id).node_id == node_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"endpoint": "http://plc:4840"}, "endpoint"),
        ({"nodes": [{"tag": "x", "node_id": "ns=2;q=1"}]}, "node_id"),
        ({"nodes": [{"tag": "9lives", "node_id": "i=1"}]}, "tag"),
        (
            {"nodes": [{"tag": "a", "node_id": "i=1"}, {"tag": "a", "node_id": "i=2"}]},
            "more than once: a",
        ),
        ({"nodes": [{"tag": "a", "node_id": "i=1", "min_value": 5, "max_value": 1}]}, "min_value"),
        ({"password": "secret"}, "needs a username"),
        ({"nodes": []}, "at least 1"),
        ({"mode": "push"}, "mode"),
    ],
)
def test_config_refuses_mistakes(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        OpcUaConfig.model_validate(_config(**changes))


def test_the_yaml_example_in_the_docs_is_a_valid_config() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    configs = [yaml.safe_load(block) for block in blocks]
    sources = [entry for config in configs for entry in config.get("opcua", [])]
    assert sources, "docs/opcua.md shows an opcua: list"
    for entry in sources:
        OpcUaConfig.model_validate(entry)
