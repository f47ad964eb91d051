"""Edge-node sessions: births, aliases, seq, rebirth requests, deaths and problems."""

from __future__ import annotations

from clusterbrain.connectors.source import Reading
from clusterbrain.connectors.sparkplug import codec
from clusterbrain.connectors.sparkplug import sparkplug_b_pb2 as pb
from clusterbrain.connectors.sparkplug.codec import (
    REBIRTH_METRIC,
    DataType,
    decode_payload,
    metric,
)
from clusterbrain.connectors.sparkplug.session import (
    BirthTag,
    Death,
    EdgeNodeSessions,
    Outcome,
)
from clusterbrain.devices.spec import TagKind
from clusterbrain.telemetry.store import Quality
from connectors.sparkplug.edge_node import EdgeNode

T0 = 1_700_000_000_000  # the edge node's payload timestamp, ms
RECEIVED_US = 1_700_000_000_500_000


def handle(
    sessions: EdgeNodeSessions, message: tuple[str, bytes], at: int = RECEIVED_US
) -> Outcome:
    return sessions.handle(message[0], message[1], at)


def born(node: EdgeNode | None = None) -> tuple[EdgeNodeSessions, EdgeNode]:
    """A session with a node (Voltage, alias 1) and a device "press" (Speed 2, Running 3)."""
    node = node or EdgeNode(timestamp_ms=T0)
    sessions = EdgeNodeSessions()
    handle(sessions, node.nbirth(metric("Voltage", DataType.Float, 230.0, alias=1)))
    handle(
        sessions,
        node.dbirth(
            "press",
            metric("Motor/Speed (rpm)", DataType.Int32, 1450, alias=2),
            metric("Running", DataType.Boolean, True, alias=3),
        ),
    )
    return sessions, node


def test_nbirth_reports_the_node_and_its_values_but_not_the_control_metrics() -> None:
    node = EdgeNode(timestamp_ms=T0)
    outcome = handle(
        EdgeNodeSessions(),
        node.nbirth(
            metric("Voltage", DataType.Float, 230.0, alias=1, timestamp_ms=T0 - 5),
            metric("Node Control/Scan Rate", DataType.Int64, 1000, alias=9),
            metric("Firmware", DataType.String, "1.2"),
        ),
    )
    (birth,) = outcome.births
    assert (birth.device_key, birth.group, birth.edge_node, birth.device) == (
        "plant1/gw1",
        "plant1",
        "gw1",
        None,
    )
    assert birth.tags == (
        BirthTag("voltage", "Voltage", DataType.Float, TagKind.FLOAT, 1),
        BirthTag("firmware", "Firmware", DataType.String, TagKind.STRING, None),
    )
    assert outcome.readings == {
        "plant1/gw1": (
            Reading("voltage", (T0 - 5) * 1000, 230.0),
            Reading("firmware", T0 * 1000, "1.2"),
        )
    }
    assert outcome.problems == () and outcome.rebirths == ()


def test_dbirth_declares_a_device_with_tag_names_from_metric_names() -> None:
    node = EdgeNode(timestamp_ms=T0)
    sessions = EdgeNodeSessions()
    handle(sessions, node.nbirth())
    outcome = handle(
        sessions,
        node.dbirth(
            "press",
            metric("Motor/Speed (rpm)", DataType.UInt16, 1450, alias=2),
            metric("Running", DataType.Boolean, True, alias=3),
            metric("Last stop", DataType.DateTime, T0 - 60_000, alias=4),
            metric("Speed", DataType.Double, 1.0, alias=5),
            metric("speed", DataType.Double, 2.0, alias=6),
        ),
    )
    (birth,) = outcome.births
    assert birth.device_key == "plant1/gw1/press" and birth.device == "press"
    assert [(t.tag, t.kind) for t in birth.tags] == [
        ("motor_speed_rpm", TagKind.INT),
        ("running", TagKind.BOOL),
        ("last_stop", TagKind.INT),
        ("speed", TagKind.FLOAT),
        ("speed_2", TagKind.FLOAT),
    ]
    assert sessions.tag_names("plant1/gw1/press") == {
        "motor_speed_rpm": "Motor/Speed (rpm)",
        "running": "Running",
        "last_stop": "Last stop",
        "speed": "Speed",
        "speed_2": "speed",
    }
    assert [r.value for r in outcome.readings["plant1/gw1/press"]] == [
        1450,
        True,
        T0 - 60_000,
        1.0,
        2.0,
    ]
    assert sessions.online("plant1/gw1/press") and sessions.online("plant1/gw1")


def test_data_by_alias_becomes_readings_of_the_device() -> None:
    sessions, node = born()
    outcome = handle(
        sessions,
        node.ddata(
            "press",
            codec.Metric(alias=2, timestamp_ms=T0 + 10, raw=None, value=-3, datatype=3),
            codec.Metric(alias=3, value=False, datatype=DataType.Boolean),
        ),
    )
    assert outcome.readings == {
        "plant1/gw1/press": (
            Reading("motor_speed_rpm", (T0 + 10) * 1000, -3, Quality.GOOD),
            Reading("running", T0 * 1000, False, Quality.GOOD),
        )
    }
    assert outcome.problems == () and outcome.rebirths == ()


def test_data_without_datatype_uses_the_birth_datatype() -> None:
    sessions, node = born()
    topic, _ = node.ddata("press")  # takes a seq; the payload is built by hand below
    message = pb.Payload(timestamp=T0, seq=node.seq)
    message.metrics.add(alias=2, int_value=2**32 - 7)  # Int32 -7, no datatype
    outcome = sessions.handle(topic, message.SerializeToString(), RECEIVED_US)
    assert outcome.readings["plant1/gw1/press"] == (Reading("motor_speed_rpm", T0 * 1000, -7),)


def test_node_data_by_name_and_null_values() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ndata(metric("Voltage", DataType.Float, None)))
    assert outcome.readings == {"plant1/gw1": (Reading("voltage", T0 * 1000, None, Quality.BAD),)}


def test_payload_without_timestamps_takes_the_time_of_receipt() -> None:
    sessions, node = born()
    topic, _ = node.ndata()
    data = codec.encode_payload(
        codec.Payload(seq=node.seq, metrics=(codec.Metric(alias=1, value=1.5, datatype=9),))
    )
    outcome = sessions.handle(topic, data, RECEIVED_US)
    assert outcome.readings["plant1/gw1"] == (Reading("voltage", RECEIVED_US, 1.5),)


def test_historical_values_keep_their_own_time() -> None:
    sessions, node = born()
    old = metric(
        None, DataType.Float, 229.0, alias=1, timestamp_ms=T0 - 3_600_000, is_historical=True
    )
    outcome = handle(sessions, node.ndata(old))
    assert outcome.readings["plant1/gw1"] == (Reading("voltage", (T0 - 3_600_000) * 1000, 229.0),)


def _is_rebirth(outcome: Outcome, topic: str = "spBv1.0/plant1/NCMD/gw1") -> bool:
    (request,) = outcome.rebirths
    (command,) = decode_payload(request.payload).metrics
    return request.topic == topic and command.name == REBIRTH_METRIC and command.value is True


def test_data_before_any_birth_asks_for_a_rebirth_once() -> None:
    sessions = EdgeNodeSessions(rebirth_retry_us=10_000_000)
    node = EdgeNode(timestamp_ms=T0)
    node.seq = 17
    first = handle(sessions, node.ndata(metric("Voltage", DataType.Float, 1.0)))
    assert _is_rebirth(first)
    assert first.readings == {} and first.problems[0].reason == "NDATA before NBIRTH"
    assert sessions.awaiting_rebirth("plant1/gw1")
    second = handle(sessions, node.ddata("press"), RECEIVED_US + 1_000_000)
    assert second.rebirths == () and second.problems[0].reason == "DDATA before NBIRTH"
    # The command may have been lost: it is repeated once the retry interval has passed.
    third = handle(sessions, node.ndata(), RECEIVED_US + 10_000_000)
    assert _is_rebirth(third)
    after = handle(sessions, node.nbirth(metric("Voltage", DataType.Float, 2.0, alias=1)))
    assert after.problems == () and not sessions.awaiting_rebirth("plant1/gw1")
    assert handle(sessions, node.ndata(metric("Voltage", DataType.Float, 3.0))).readings


def test_a_seq_gap_asks_for_a_rebirth_and_holds_data_until_it_comes() -> None:
    sessions, node = born()
    node.ndata()  # lost on the way
    outcome = handle(sessions, node.ndata(metric("Voltage", DataType.Float, 1.0)))
    assert _is_rebirth(outcome)
    assert outcome.problems[0].reason == "seq 3 where 2 was expected"
    assert outcome.readings == {}
    waiting = handle(sessions, node.ddata("press", metric("Running", DataType.Boolean, False)))
    assert waiting.rebirths == () and waiting.readings == {}
    assert [p.reason for p in waiting.problems] == ["awaiting rebirth"]
    assert waiting.problems[0].device_key == "plant1/gw1/press"
    handle(sessions, node.nbirth(metric("Voltage", DataType.Float, 2.0, alias=1)))
    # the new NBIRTH started a new session: the device must be born again before its DATA counts
    assert not sessions.online("plant1/gw1/press")
    assert handle(sessions, node.ndata(metric("Voltage", DataType.Float, 3.0))).readings


def test_seq_wraps_from_255_to_0() -> None:
    sessions = EdgeNodeSessions()
    node = EdgeNode(timestamp_ms=T0)
    handle(sessions, node.nbirth(metric("Voltage", DataType.Float, 1.0, alias=1), seq=254))
    for value in range(4):  # seq 255, 0, 1, 2
        outcome = handle(sessions, node.ndata(metric(None, DataType.Float, float(value), alias=1)))
        assert outcome.rebirths == () and outcome.problems == ()
    assert node.seq == 2


def test_a_missing_seq_counts_as_a_gap() -> None:
    sessions, node = born()
    topic, _ = node.ndata()
    data = codec.encode_payload(codec.Payload(timestamp_ms=T0))
    assert _is_rebirth(sessions.handle(topic, data, RECEIVED_US))


def test_an_unknown_alias_asks_for_a_rebirth() -> None:
    sessions, node = born()
    outcome = handle(
        sessions,
        node.ddata(
            "press",
            metric(None, DataType.Boolean, True, alias=3),
            metric(None, DataType.Double, 1.0, alias=42),
        ),
    )
    assert _is_rebirth(outcome) and outcome.readings == {}
    assert outcome.problems[0].reason == "unknown metric alias 42"


def test_an_unknown_metric_name_asks_for_a_rebirth() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ndata(metric("Current", DataType.Double, 1.0)))
    assert _is_rebirth(outcome)
    assert outcome.problems[0].reason == "unknown metric name 'Current'"


def test_an_alias_of_another_device_is_not_used() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ndata(metric(None, DataType.Boolean, True, alias=3)))
    assert _is_rebirth(outcome)


def test_device_data_without_its_dbirth_asks_for_a_rebirth() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ddata("oven", metric("T", DataType.Double, 1.0)))
    assert _is_rebirth(outcome)
    assert outcome.problems[0].reason == "DDATA of a device without DBIRTH"


def test_dbirth_before_nbirth_asks_for_a_rebirth() -> None:
    sessions = EdgeNodeSessions()
    outcome = handle(sessions, EdgeNode().dbirth("press", metric("x", DataType.Double, 1.0)))
    assert _is_rebirth(outcome) and outcome.births == ()


def test_ndeath_with_the_birth_bdseq_takes_node_and_devices_offline() -> None:
    sessions, node = born(EdgeNode(bd_seq=5, timestamp_ms=T0))
    handle(sessions, node.dbirth("oven", metric("T", DataType.Double, 1.0, alias=10)))
    outcome = handle(sessions, node.ndeath())
    assert outcome.deaths == (
        Death("plant1/gw1", "NDEATH"),
        Death("plant1/gw1/press", "NDEATH of its edge node"),
        Death("plant1/gw1/oven", "NDEATH of its edge node"),
    )
    assert not sessions.online("plant1/gw1") and not sessions.online("plant1/gw1/press")
    # what comes after the death, without a new birth, is data of an unknown node
    assert _is_rebirth(handle(sessions, node.ndata(metric("Voltage", DataType.Float, 1.0))))


def test_a_stale_ndeath_is_ignored() -> None:
    sessions, node = born(EdgeNode(bd_seq=5, timestamp_ms=T0))
    outcome = handle(sessions, node.ndeath(bd_seq=4))
    assert outcome.deaths == () and outcome.problems == ()
    assert outcome.ignored == ("NDEATH bdSeq 4 is not the current NBIRTH's 5",)
    assert sessions.online("plant1/gw1/press")


def test_ndeath_of_an_unknown_node_is_ignored() -> None:
    outcome = handle(EdgeNodeSessions(), EdgeNode().ndeath())
    assert outcome.deaths == () and outcome.ignored


def test_nbirth_without_bdseq_is_a_problem_and_any_ndeath_ends_it() -> None:
    sessions = EdgeNodeSessions()
    node = EdgeNode()
    data = codec.encode_payload(codec.Payload(T0, 0, (metric("x", DataType.Double, 1.0),)))
    outcome = sessions.handle("spBv1.0/plant1/NBIRTH/gw1", data, RECEIVED_US)
    assert outcome.births and "without a bdSeq" in outcome.problems[0].reason
    assert handle(sessions, node.ndeath(bd_seq=9)).deaths == (Death("plant1/gw1", "NDEATH"),)


def test_ndeath_without_bdseq_is_a_problem() -> None:
    sessions, _ = born()
    outcome = sessions.handle("spBv1.0/plant1/NDEATH/gw1", b"", RECEIVED_US)
    assert outcome.deaths == () and outcome.problems[0].reason == "NDEATH without a bdSeq metric"


def test_ddeath_takes_one_device_offline_and_forgets_its_aliases() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ddeath("press"))
    assert outcome.deaths == (Death("plant1/gw1/press", "DDEATH"),)
    assert outcome.rebirths == () and outcome.problems == ()
    assert not sessions.online("plant1/gw1/press") and sessions.online("plant1/gw1")
    assert sessions.tag_names("plant1/gw1/press") == {}
    reborn = handle(sessions, node.dbirth("press", metric("Other", DataType.Int8, -1, alias=2)))
    assert reborn.problems == ()
    assert reborn.readings["plant1/gw1/press"] == (Reading("other", T0 * 1000, -1),)


def test_a_repeated_dbirth_replaces_the_device_metrics() -> None:
    sessions, node = born()
    outcome = handle(
        sessions, node.dbirth("press", metric("Torque", DataType.Double, 5.0, alias=3))
    )
    assert outcome.problems == ()
    assert sessions.tag_names("plant1/gw1/press") == {"torque": "Torque"}
    assert _is_rebirth(
        handle(sessions, node.ddata("press", metric(None, DataType.Int32, 1, alias=2)))
    )


def test_unsupported_datatypes_are_reported_at_birth_and_then_left_out() -> None:
    sessions = EdgeNodeSessions()
    node = EdgeNode(timestamp_ms=T0)
    handle(sessions, node.nbirth())
    topic, _ = node.dbirth("press")
    message = pb.Payload(timestamp=T0, seq=node.seq)
    message.metrics.add(name="Recipe", alias=7, datatype=DataType.DataSet)
    message.metrics.add(name="Picture", alias=8, datatype=DataType.Bytes, bytes_value=b"\x89PNG")
    message.metrics.add(name="Count", alias=9, datatype=DataType.UInt32, int_value=3)
    outcome = sessions.handle(topic, message.SerializeToString(), RECEIVED_US)
    assert [p.reason for p in outcome.problems] == [
        "metric 'Recipe': datatype DataSet is not supported",
        "metric 'Picture': datatype Bytes is not supported",
    ]
    assert [t.tag for t in outcome.births[0].tags] == ["count"]
    later = handle(
        sessions,
        node.ddata(
            "press",
            codec.Metric(alias=8, datatype=DataType.Bytes, is_null=True),
            metric(None, DataType.UInt32, 4, alias=9),
        ),
    )
    assert later.problems == () and later.rebirths == ()
    assert later.readings == {"plant1/gw1/press": (Reading("count", T0 * 1000, 4),)}


def test_a_value_that_does_not_fit_its_datatype_is_a_problem_for_that_metric_only() -> None:
    sessions, node = born()
    topic, _ = node.ddata("press")
    message = pb.Payload(timestamp=T0, seq=node.seq)
    message.metrics.add(alias=2, string_value="fast")
    message.metrics.add(alias=3, datatype=DataType.Double, double_value=1.0)
    message.metrics.add(alias=3, boolean_value=True)
    outcome = sessions.handle(topic, message.SerializeToString(), RECEIVED_US)
    assert [p.reason for p in outcome.problems] == [
        "metric 'Motor/Speed (rpm)': Int32 metric carries a str value",
        "metric 'Running': datatype Double where the BIRTH declared Boolean",
    ]
    assert outcome.readings == {"plant1/gw1/press": (Reading("running", T0 * 1000, True),)}


def test_control_metrics_in_data_are_neither_read_nor_unknown() -> None:
    sessions, node = born()
    outcome = handle(sessions, node.ndata(metric(REBIRTH_METRIC, DataType.Boolean, False)))
    assert outcome == Outcome()


def test_duplicate_aliases_and_names_in_a_birth_are_problems() -> None:
    sessions = EdgeNodeSessions()
    node = EdgeNode()
    outcome = handle(
        sessions,
        node.nbirth(
            metric("a", DataType.Double, 1.0, alias=1),
            metric("b", DataType.Double, 1.0, alias=1),
            metric("a", DataType.Double, 2.0, alias=2),
        ),
    )
    assert [p.reason for p in outcome.problems] == [
        "alias 1 declared twice in the session",
        "metric 'a' declared twice in the BIRTH",
    ]


def test_bad_topics_and_malformed_payloads_are_problems() -> None:
    sessions, node = born()
    bad_topic = sessions.handle("spBv1.0/plant1/NDATA", b"", RECEIVED_US)
    assert bad_topic.problems[0].reason.startswith("bad topic: expected spBv1.0/group/type")
    malformed = sessions.handle("spBv1.0/plant1/NDATA/gw1", b"\xff\xff", RECEIVED_US)
    assert malformed.problems[0].reason.startswith("malformed Sparkplug B payload")
    assert malformed.problems[0].device_key == "plant1/gw1"
    # the malformed message used up a seq: the next one shows the gap
    node.ndata()
    assert _is_rebirth(handle(sessions, node.ndata()))


def test_commands_and_state_are_ignored() -> None:
    sessions, _ = born()
    for topic in ("spBv1.0/plant1/NCMD/gw1", "spBv1.0/plant1/DCMD/gw1/press", "spBv1.0/STATE/h"):
        outcome = sessions.handle(topic, codec.encode_rebirth(timestamp_ms=T0), RECEIVED_US)
        assert outcome.ignored and not outcome.problems and not outcome.rebirths
