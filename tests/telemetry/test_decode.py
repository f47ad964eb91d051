"""Payload decoding: examples and fuzzing. Every value ends stored or rejected with a reason."""

from __future__ import annotations

import json
import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterbrain.api.runtime import Runtime
from clusterbrain.devices.spec import DeviceSpec, TagKind, TagRule
from clusterbrain.telemetry.decode import PointColumns, Reason, decode_message
from clusterbrain.telemetry.pipeline import MessageOutcome, RawMessage
from support.world import World

NOW_US = 1_790_000_000_000_000
SPEC = DeviceSpec(
    "dev-1",
    1,
    True,
    {
        "t": TagRule(TagKind.FLOAT, 0, 100),
        "n": TagRule(TagKind.INT),
        "b": TagRule(TagKind.BOOL),
        "s": TagRule(TagKind.STRING),
    },
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)
timestamps = (
    st.none()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "2026-11-25T00:00:00Z",
            "2026-11-25T00:00:00.123456+08:00",
            "2099-01-01T00:00:00Z",
            "1970-01-01",
        ]
    )
)
samples = st.fixed_dictionaries(
    {
        "values": st.dictionaries(
            st.sampled_from(["t", "n", "b", "s", "zz"]), json_values, min_size=1, max_size=5
        )
    },
    optional={"ts": timestamps},
)
documents = samples | st.lists(samples, min_size=1, max_size=5)


def _decode(payload: bytes) -> tuple[PointColumns, list[Any]]:
    out = PointColumns()
    return out, decode_message(payload, SPEC, "dev-1", NOW_US, out)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(payload: bytes) -> None:
    out, rejections = _decode(payload)
    assert len(out) > 0 or rejections


@given(documents)
def test_every_value_is_stored_or_rejected(document: Any) -> None:
    out, rejections = _decode(json.dumps(document).encode())
    sent = sum(len(s["values"]) for s in (document if isinstance(document, list) else [document]))
    whole_message = len(rejections) == 1 and rejections[0].values == 0 and len(out) == 0
    assert whole_message or len(out) + sum(r.values for r in rejections) == sent
    assert all(isinstance(r.reason, Reason) and r.detail for r in rejections)
    table = out.to_table()
    assert table.num_rows == len(out)


def test_examples() -> None:
    out, rejections = _decode(
        b'{"ts": 1790000000000, "values": {"t": 150, "n": 3, "b": false, "s": "run"}}'
    )
    assert rejections == [] and len(out) == 4
    assert out.quality == [1, 0, 0, 0]  # 150 is outside 0..100: kept, but uncertain
    assert out.text[3] == "run" and out.value[2] == 0.0
    assert _decode(b"{")[1][0].reason is Reason.MALFORMED_JSON
    unknown = decode_message(b'{"values": {"t": 1}}', None, "x", NOW_US, PointColumns())
    assert unknown[0].reason is Reason.UNKNOWN_DEVICE
    revoked = DeviceSpec("dev-1", 1, False, SPEC.tags)
    assert (
        decode_message(b'{"values": {"t": 1}}', revoked, "dev-1", NOW_US, PointColumns())[0].reason
        is Reason.REVOKED_DEVICE
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(
        st.binary(max_size=80) | documents.map(lambda d: json.dumps(d).encode()),
        min_size=1,
        max_size=8,
    )
)
def test_fuzzed_payloads_never_stop_the_worker(
    runtime: Runtime, world: World, payloads: list[bytes]
) -> None:
    """Through the real pipeline: each message is answered, and the worker keeps running."""
    done: list[MessageOutcome] = []
    finished = threading.Event()

    def on_done(outcome: MessageOutcome) -> None:
        done.append(outcome)
        if len(done) == len(payloads):
            finished.set()

    for payload in payloads:
        message = RawMessage(world.a.device_id, payload, "mqtt", "fuzz", on_done=on_done)
        assert runtime.pipeline.submit(message, timeout=5)
    assert finished.wait(20)
    assert all(o.points > 0 or o.rejections for o in done)


def _decoded(payload: Any) -> tuple[PointColumns, list[Any]]:
    out = PointColumns()
    rejections = decode_message(json.dumps(payload).encode(), SPEC, "dev-1", NOW_US, out)
    return out, rejections


def test_a_source_reported_quality_is_kept_and_never_better_than_the_range_check() -> None:
    sample = {
        "ts": 1_789_999_999_000,
        "values": {"t": 50.0, "n": None, "s": "ok", "b": True},
        "quality": {"t": "uncertain", "n": "bad"},
    }
    out, rejections = _decoded(sample)
    assert rejections == []
    stored = dict(zip(out.tag, zip(out.value, out.quality, strict=True), strict=True))
    assert stored == {"t": (50.0, 1), "n": (None, 2), "s": (None, 0), "b": (1.0, 0)}
    out, _ = _decoded({**sample, "values": {"t": 500.0}, "quality": {"t": "good"}})
    assert out.quality == [1]  # out of range stays uncertain even when the source says good


def test_a_null_value_needs_a_bad_quality_and_unknown_qualities_are_refused() -> None:
    out, rejections = _decoded({"values": {"t": None}, "quality": {"t": "uncertain"}})
    assert len(out) == 0 and [r.reason for r in rejections] == [Reason.WRONG_TYPE]
    out, rejections = _decoded({"values": {"t": 1.0}, "quality": {"t": "grey"}})
    assert len(out) == 0 and [r.reason for r in rejections] == [Reason.BAD_STRUCTURE]
    assert "quality" in rejections[0].detail


def test_data_via_a_gateway_is_accepted_only_from_the_device_s_own_gateway() -> None:
    behind = DeviceSpec("meter-1", 1, True, {"t": TagRule(TagKind.FLOAT)}, gateway_id="gw-1")
    payload = json.dumps({"values": {"t": 1.0}}).encode()
    for via, spec, stored in (("gw-1", behind, 1), ("gw-2", behind, 0), ("gw-1", SPEC, 0)):
        out = PointColumns()
        rejections = decode_message(payload, spec, spec.device_id, NOW_US, out, via=via)
        assert len(out) == stored
        assert [r.reason for r in rejections] == ([] if stored else [Reason.NOT_BEHIND_GATEWAY])
    out = PointColumns()
    assert decode_message(payload, behind, "meter-1", NOW_US, out) == [] and len(out) == 1
