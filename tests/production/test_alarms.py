"""The ISA-18.2 alarm lifecycle: states, acknowledgement, shelving, suppression, deduplication,
escalation, notifications and the audit trail; hypothesis properties over random event streams."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.alarms import (
    BASE_STATES,
    Acknowledge,
    Alarm,
    AlarmActionError,
    AlarmEvent,
    AlarmState,
    ConditionActive,
    ConditionCleared,
    EscalationPolicy,
    Notify,
    Priority,
    Shelve,
    Suppress,
    Tick,
    Unshelve,
    Unsuppress,
    condition_event,
)
from clusterbrain.production.rules import ThresholdRule

S = 1_000_000
N, UA, AA, RTN = (
    AlarmState.NORMAL,
    AlarmState.UNACK_ACTIVE,
    AlarmState.ACK_ACTIVE,
    AlarmState.UNACK_RTN,
)


def at(seconds: float) -> int:
    return round(seconds * S)


def kinds(notes: list[Notify]) -> list[str]:
    return [n.kind for n in notes]


def trail(alarm: Alarm) -> list[tuple[float, str, str | None, str, str]]:
    return [
        (a.ts_us / S, a.event, a.user, a.from_state.value, a.to_state.value) for a in alarm.audit
    ]


# --- the four ISA-18.2 states ------------------------------------------------------------------


def test_acknowledged_then_cleared() -> None:
    alarm = Alarm("m1.hot", Priority.HIGH, message="Barrel zone 1 above 240 °C")
    raised = alarm.condition_active(at(0), 241.0)
    assert alarm.state is UA
    assert raised == [Notify("raised", "m1.hot", Priority.HIGH, 0, 1, UA, 0, 241.0,
                             "Barrel zone 1 above 240 °C")]  # fmt: skip
    assert alarm.acknowledge(at(10), "wang.fang", "checking the heater") == []
    assert alarm.state is AA
    assert kinds(alarm.condition_cleared(at(60), 236.0)) == ["cleared"]
    assert alarm.state is N
    assert trail(alarm) == [
        (0, "condition_active", None, "normal", "unack_active"),
        (10, "acknowledge", "wang.fang", "unack_active", "ack_active"),
        (60, "condition_cleared", None, "ack_active", "normal"),
    ]
    assert alarm.audit[1].detail == "checking the heater"


def test_cleared_then_acknowledged() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0))
    notes = alarm.condition_cleared(at(5))
    assert alarm.state is RTN and notes[0].state is RTN
    alarm.acknowledge(at(9), "li.wei")
    assert alarm.state is N


def test_returning_before_acknowledgement_is_a_new_occurrence() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0))
    alarm.condition_cleared(at(5))
    notes = alarm.condition_active(at(7))
    assert kinds(notes) == ["raised"] and notes[0].occurrence == 2
    assert alarm.state is UA


def test_a_repeat_while_active_is_counted_not_raised_again() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0), 241.0)
    assert alarm.condition_active(at(1), 243.0) == []
    alarm.acknowledge(at(2), "li.wei")
    assert alarm.condition_active(at(3), 245.0) == []
    assert (alarm.occurrence, alarm.repeats, alarm.last_value) == (1, 2, 245.0)
    assert [a.event for a in alarm.audit] == ["condition_active", "acknowledge"]
    assert alarm.condition_cleared(at(4))[0].occurrence == 1
    assert alarm.condition_cleared(at(5)) == []  # nothing to clear


def test_acknowledging_a_normal_alarm_is_refused_and_changes_nothing() -> None:
    alarm = Alarm("m1.hot")
    with pytest.raises(AlarmActionError, match="nothing to acknowledge \\(normal\\)"):
        alarm.acknowledge(at(0), "li.wei")
    alarm.condition_active(at(1))
    alarm.acknowledge(at(2), "li.wei")
    before = alarm.to_dict()
    with pytest.raises(AlarmActionError, match="ack_active"):
        alarm.acknowledge(at(3), "zhao.lei")
    assert alarm.to_dict() == before
    assert AlarmActionError.status == 409


def test_actions_need_a_named_user() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0))
    with pytest.raises(InvalidInput, match="user"):
        alarm.acknowledge(at(1), "  ")
    with pytest.raises(InvalidInput, match="user"):
        alarm.shelve(at(1), "", at(100))


# --- shelving ----------------------------------------------------------------------------------


def test_shelving_hides_the_alarm_until_unshelved() -> None:
    alarm = Alarm("m1.hot", Priority.CRITICAL)
    alarm.condition_active(at(0))
    assert alarm.shelve(at(10), "li.wei", at(3600), "sensor being replaced") == []
    assert alarm.state is AlarmState.SHELVED and alarm.underlying_state is UA
    assert alarm.tick(at(1000)) == []  # no escalation while shelved
    assert alarm.unshelve(at(1200), "li.wei") == []  # it was announced before: no second raise
    assert alarm.state is UA
    assert kinds(alarm.tick(at(1201))) == ["escalated", "escalated"]  # both levels were due
    assert alarm.audit[1].detail == f"until {at(3600)}: sensor being replaced"


def test_a_shelf_expires_by_itself() -> None:
    alarm = Alarm("m1.hot")
    alarm.shelve(at(0), "li.wei", at(100))
    alarm.condition_active(at(10))  # not announced
    assert alarm.tick(at(99)) == []
    notes = alarm.tick(at(100))
    assert kinds(notes) == ["raised"] and notes[0].ts_us == at(100)
    assert alarm.state is UA
    assert trail(alarm)[-1] == (100, "shelve_expired", None, "shelved", "unack_active")


def test_any_event_after_the_expiry_ends_the_shelf_first() -> None:
    alarm = Alarm("m1.hot")
    alarm.shelve(at(0), "li.wei", at(100))
    notes = alarm.condition_active(at(150))
    assert kinds(notes) == ["raised"]
    assert [a.event for a in alarm.audit] == ["shelve", "shelve_expired", "condition_active"]


def test_an_occurrence_that_came_and_went_while_shelved_needs_no_acknowledgement() -> None:
    alarm = Alarm("m1.hot")
    alarm.shelve(at(0), "li.wei", at(100))
    assert alarm.condition_active(at(10)) == []
    assert alarm.condition_cleared(at(20)) == []
    assert alarm.underlying_state is N
    assert "needs no acknowledgement" in alarm.audit[-1].detail
    assert alarm.unshelve(at(30), "li.wei") == []
    assert alarm.state is N


def test_an_announced_occurrence_still_needs_its_acknowledgement_after_shelving() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0))
    assert kinds(alarm.condition_cleared(at(5))) == ["cleared"]
    alarm.shelve(at(6), "li.wei", at(100))
    alarm.condition_active(at(10))
    assert alarm.condition_cleared(at(20)) == []  # not announced: no cleared notice
    alarm.unshelve(at(30), "li.wei")
    assert alarm.state is RTN  # the first occurrence was announced and is not acknowledged


def test_a_cleared_notice_goes_out_even_while_shelved() -> None:
    alarm = Alarm("m1.hot")
    alarm.condition_active(at(0))
    alarm.shelve(at(1), "li.wei", at(100))
    notes = alarm.condition_cleared(at(5))
    assert kinds(notes) == ["cleared"] and notes[0].state is AlarmState.SHELVED


def test_shelving_rules() -> None:
    alarm = Alarm("m1.hot")
    with pytest.raises(InvalidInput, match="end after it begins"):
        alarm.shelve(at(10), "li.wei", at(10))
    with pytest.raises(AlarmActionError, match="not shelved"):
        alarm.unshelve(at(10), "li.wei")
    alarm.shelve(at(10), "li.wei", at(20))
    alarm.shelve(at(15), "zhao.lei", at(50))  # shelving again moves the end
    assert alarm.shelved_until_us == at(50)
    before = alarm.to_dict()
    with pytest.raises(AlarmActionError, match="not shelved"):
        alarm.unshelve(at(60), "li.wei")  # it has expired by then
    assert alarm.to_dict() == before  # refused: not even the expiry was applied
    alarm.tick(at(60))
    assert alarm.state is N and alarm.audit[-1].event == "shelve_expired"


# --- suppression by design ---------------------------------------------------------------------


def test_suppressed_during_a_planned_stop() -> None:
    alarm = Alarm("m1.cold", Priority.HIGH)
    alarm.suppress(at(0), "planned stop: lunch break")
    assert alarm.state is AlarmState.SUPPRESSED
    assert alarm.condition_active(at(60)) == []  # the barrel cools down: tracked, not announced
    assert alarm.active and alarm.underlying_state is UA
    assert alarm.tick(at(5000)) == []
    notes = alarm.unsuppress(at(5400))  # still cold when production resumes: now it counts
    assert kinds(notes) == ["raised"] and alarm.state is UA
    with pytest.raises(AlarmActionError, match="not suppressed"):
        alarm.unsuppress(at(5401))
    alarm.suppress(at(5402))
    with pytest.raises(AlarmActionError, match="already suppressed"):
        alarm.suppress(at(5403))


def test_suppression_outranks_shelving_in_what_is_shown() -> None:
    alarm = Alarm("m1.cold")
    alarm.shelve(at(0), "li.wei", at(100))
    alarm.suppress(at(1))
    assert alarm.state is AlarmState.SUPPRESSED
    alarm.unsuppress(at(2))
    assert alarm.state is AlarmState.SHELVED


def test_an_alarm_can_be_acknowledged_while_shelved_or_suppressed() -> None:
    alarm = Alarm("m1.cold")
    alarm.condition_active(at(0))
    alarm.suppress(at(1))
    alarm.acknowledge(at(2), "li.wei")
    assert alarm.state is AlarmState.SUPPRESSED and alarm.underlying_state is AA
    assert alarm.unsuppress(at(3)) == []


# --- priorities and escalation -----------------------------------------------------------------


def test_priorities_rank_from_critical_to_low() -> None:
    assert sorted(["low", "critical", "medium", "high"], key=lambda p: Priority(p).rank) == [
        "critical",
        "high",
        "medium",
        "low",
    ]
    assert Alarm("a", "critical").priority is Priority.CRITICAL  # type: ignore[arg-type]


def test_an_unacknowledged_alarm_escalates_once_per_level() -> None:
    alarm = Alarm("m1.fire", Priority.CRITICAL)  # default levels after 300 s and 900 s
    alarm.condition_active(at(1000))
    assert alarm.tick(at(1299)) == []
    first = alarm.tick(at(1300))
    assert [(n.kind, n.level, n.ts_us) for n in first] == [("escalated", 1, at(1300))]
    assert alarm.tick(at(1301)) == [] and alarm.tick(at(1899)) == []
    assert [n.level for n in alarm.tick(at(5000))] == [2]
    assert alarm.tick(at(9000)) == []  # no more levels
    assert trail(alarm)[-1] == (5000, "escalate", None, "unack_active", "unack_active")


def test_acknowledging_stops_escalation_and_a_new_occurrence_starts_over() -> None:
    alarm = Alarm("m1.hot", Priority.HIGH, EscalationPolicy(after_s={Priority.HIGH: (60.0,)}))
    alarm.condition_active(at(0))
    alarm.acknowledge(at(30), "li.wei")
    assert alarm.tick(at(100)) == []
    alarm.condition_cleared(at(110))
    alarm.condition_active(at(200))
    assert [n.occurrence for n in alarm.tick(at(260))] == [2]


def test_an_alarm_that_cleared_unacknowledged_does_not_escalate() -> None:
    alarm = Alarm("m1.hot", Priority.CRITICAL)
    alarm.condition_active(at(0))
    alarm.condition_cleared(at(10))
    assert alarm.tick(at(10_000)) == []


def test_low_priority_never_escalates_by_default() -> None:
    alarm = Alarm("m1.note", Priority.LOW)
    alarm.condition_active(at(0))
    assert alarm.tick(at(10**6)) == []


@pytest.mark.parametrize(
    "after",
    [{"critical": [300, 300]}, {"high": [0]}, {"low": [-1]}, {"urgent": [5]}],
)
def test_escalation_times_are_positive_and_increasing(after: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EscalationPolicy.model_validate({"after_s": after})


# --- notifications, persistence, glue ----------------------------------------------------------


def test_notifications_and_the_alarm_are_plain_json() -> None:
    alarm = Alarm("m1.hot", Priority.HIGH, message="热")
    notes = alarm.condition_active(at(0), 241.5)
    payload = json.loads(json.dumps(notes[0].to_payload()))
    assert payload == {
        "kind": "raised",
        "alarm_id": "m1.hot",
        "priority": "high",
        "ts_us": 0,
        "occurrence": 1,
        "state": "unack_active",
        "level": 0,
        "value": 241.5,
        "message": "热",
    }
    alarm.shelve(at(1), "li.wei", at(100), "maintenance")
    restored = Alarm.from_dict(json.loads(json.dumps(alarm.to_dict())))
    assert restored == alarm and restored.state is AlarmState.SHELVED
    assert kinds(restored.tick(at(100))) == []  # announced before, not raised twice


def test_rule_transitions_drive_an_alarm() -> None:
    rule = ThresholdRule(id="hot", tag="t", op=">", limit=80, deadband=2)
    samples = [(at(t), "t", v) for t, v in enumerate([79.0, 81.0, 79.0, 82.0, 77.0])]
    alarm = Alarm("m1.hot")
    notes = [n for t in rule.evaluator().evaluate(samples) for n in alarm.apply(condition_event(t))]
    assert [(n.kind, n.ts_us / S) for n in notes] == [("raised", 1), ("cleared", 4)]


# --- properties over random event streams ------------------------------------------------------

users = st.sampled_from(["li.wei", "wang.fang", " "])
# condition events and ticks twice as often as operator actions
EVENT_KINDS = ("active", "cleared", "ack", "tick") * 2 + ("shelve", "unshelve", "suppress")
EVENT_KINDS += ("unsuppress",)


@st.composite
def event_streams(draw: st.DrawFn) -> list[AlarmEvent]:
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1200),
                st.sampled_from(EVENT_KINDS),
                users,
                st.integers(-10, 3000),
            ),
            max_size=60,
        )
    )
    events: list[AlarmEvent] = []
    now = 0
    for gap, kind, user, span in steps:
        now += gap * S
        events.append(_event(kind, now, user, now + span * S))
    return events


def _event(kind: str, now: int, user: str, until: int) -> AlarmEvent:
    match kind:
        case "active":
            return ConditionActive(now, 1.0)
        case "cleared":
            return ConditionCleared(now, 0.0)
        case "ack":
            return Acknowledge(now, user)
        case "shelve":
            return Shelve(now, user, until)
        case "unshelve":
            return Unshelve(now, user)
        case "suppress":
            return Suppress(now)
        case "unsuppress":
            return Unsuppress(now)
    return Tick(now)


class Observer:
    """Replays a stream and checks the lifecycle's invariants after every event."""

    def __init__(self, alarm: Alarm) -> None:
        self.alarm = alarm
        self.notes: list[Notify] = []
        self.told_since_ack = False

    def feed(self, event: AlarmEvent) -> None:
        alarm = self.alarm
        before, underlying = alarm.to_dict(), alarm.underlying_state
        try:
            notes = alarm.apply(event)
        except (AlarmActionError, InvalidInput):
            assert alarm.to_dict() == before  # a refused action changes nothing
            return
        self.check_normal_is_earned(event, underlying, notes)
        self.notes += notes
        self.check_state()

    def check_normal_is_earned(
        self, event: AlarmEvent, underlying: AlarmState, notes: list[Notify]
    ) -> None:
        """NORMAL only after cleared and acknowledged (or never announced at all)."""
        told = self.told_since_ack or any(n.kind == "raised" for n in notes)
        if self.alarm.underlying_state is N and underlying is not N:
            assert not self.alarm.active
            assert (
                isinstance(event, Acknowledge)
                or (isinstance(event, ConditionCleared) and underlying is AA)
                or (isinstance(event, ConditionCleared) and not told)
            )
        self.told_since_ack = told and not isinstance(event, Acknowledge)
        if self.alarm.acknowledged:
            self.told_since_ack = False

    def check_state(self) -> None:
        alarm = self.alarm
        assert alarm.state in set(AlarmState)
        assert alarm.underlying_state in BASE_STATES
        expected = (
            AlarmState.SUPPRESSED
            if alarm.suppressed
            else AlarmState.SHELVED
            if alarm.shelved_until_us is not None
            else alarm.underlying_state
        )
        assert alarm.state is expected
        for earlier, later in zip(alarm.audit, alarm.audit[1:], strict=False):
            assert later.from_state is earlier.to_state  # every change is on the record
        if alarm.audit:
            assert alarm.audit[-1].to_state is alarm.state

    def check_notifications(self) -> None:
        """raised/cleared alternate per occurrence; escalations climb by one, only while owed."""
        open_occurrence: int | None = None
        level, acked_or_cleared = 0, True
        for note in self.notes:
            if note.kind == "raised":
                assert open_occurrence is None
                open_occurrence, level, acked_or_cleared = note.occurrence, 0, False
            elif note.kind == "cleared":
                assert note.occurrence == open_occurrence
                open_occurrence = None
            else:
                assert note.occurrence == open_occurrence and not acked_or_cleared
                assert note.level == level + 1
                level = note.level


@settings(max_examples=400, deadline=None)
@given(event_streams(), st.sampled_from(list(Priority)))
def test_no_event_stream_reaches_an_undefined_state(
    events: list[AlarmEvent], priority: Priority
) -> None:
    observer = Observer(Alarm("a", priority, EscalationPolicy(after_s={priority: (60, 600)})))
    for event in events:
        observer.feed(event)
    observer.check_notifications()


@settings(max_examples=200, deadline=None)
@given(event_streams())
def test_acknowledging_a_normal_or_acknowledged_alarm_is_a_refused_no_op(
    events: list[AlarmEvent],
) -> None:
    alarm = Alarm("a")
    for event in events:
        with contextlib.suppress(AlarmActionError, InvalidInput):
            alarm.apply(event)
        if alarm.underlying_state in (N, AA):
            before = alarm.to_dict()
            with pytest.raises(AlarmActionError):
                alarm.acknowledge(event.ts_us, "li.wei")
            assert alarm.to_dict() == before


@settings(max_examples=200, deadline=None)
@given(event_streams())
def test_normal_only_once_cleared_and_acknowledged(events: list[AlarmEvent]) -> None:
    """Outside overlays every occurrence is announced, so NORMAL needs both, in either order."""
    alarm = Alarm("a")
    cleared = acknowledged = True
    for event in events:
        if isinstance(event, Shelve | Suppress):
            continue
        was = alarm.underlying_state
        try:
            alarm.apply(event)
        except (AlarmActionError, InvalidInput):
            continue
        if isinstance(event, ConditionActive) and was in (N, RTN):
            cleared = acknowledged = False  # a new occurrence
        if isinstance(event, ConditionCleared):
            cleared = True
        if isinstance(event, Acknowledge):
            acknowledged = True
        if alarm.state is N:
            assert cleared and acknowledged


def test_the_documented_policy_and_payload_match_the_code() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "alarms.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    (policy,) = [b for b in blocks if "after_s" in b]
    assert EscalationPolicy.model_validate(policy).thresholds_us(Priority.HIGH) == (900 * S,)
    (payload,) = [b for b in blocks if "kind" in b]
    alarm = Alarm(payload["alarm_id"], Priority(payload["priority"]), message=payload["message"])
    raised = alarm.condition_active(payload["ts_us"], payload["value"])[0].to_payload()
    assert raised == {**payload, "occurrence": 1}
