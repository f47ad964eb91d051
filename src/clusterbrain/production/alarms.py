"""The ISA-18.2 alarm lifecycle as a pure state machine: events in, notification intents out.

A rule says *the condition* is active or cleared (``rules.py``). Whether people have been told,
whether someone has taken responsibility, and whether the alarm is silenced for a while is the
alarm's business, kept here so that it can be tested without a database, a clock or a mail
server. The caller stores the :class:`Alarm`, passes the time in, and delivers the
:class:`Notify` intents (``platform/notify.py``).

The four ISA-18.2 states follow from two facts, *is the condition active* and *is the current
occurrence acknowledged*, so no combination of events can reach an undefined state::

                    condition active                 acknowledge
      NORMAL ────────────────────────▶ UNACK_ACTIVE ───────────────▶ ACK_ACTIVE
        ▲  ▲                               │    ▲                        │
        │  │                     cleared   │    │ active again           │ cleared
        │  │                               ▼    │ (new occurrence)       │
        │  └──────── acknowledge ────── UNACK_RTN                        │
        └────────────────────────────────────────────────────────────────┘

SHELVED (an operator silences a nuisance alarm until a time) and SUPPRESSED (by design, e.g.
while the machine is in a planned stop) are overlays: the alarm keeps tracking the condition and
acknowledgements underneath and returns to that underlying state when the overlay ends. While
overlaid nothing new is announced; an occurrence that began and ended unseen needs no
acknowledgement. A ``cleared`` is still delivered for an occurrence whose ``raised`` went out, so
that every receiver can close what it opened.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clusterbrain.platform.errors import ClusterBrainError, Conflict, InvalidInput
from clusterbrain.production.expressions import Value
from clusterbrain.production.rules import Transition


class Priority(enum.StrEnum):
    """ISA-18.2 priorities, most urgent first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for critical … 3 for low: sort alarm lists by it."""
        return list(Priority).index(self)


class AlarmState(enum.StrEnum):
    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    UNACK_RTN = "unack_rtn"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"


BASE_STATES = (
    AlarmState.NORMAL,
    AlarmState.UNACK_ACTIVE,
    AlarmState.ACK_ACTIVE,
    AlarmState.UNACK_RTN,
)
"""The states an alarm has underneath an overlay."""

DEFAULT_ESCALATION_S: dict[Priority, tuple[float, ...]] = {
    Priority.CRITICAL: (300.0, 900.0),
    Priority.HIGH: (900.0, 3600.0),
    Priority.MEDIUM: (3600.0,),
    Priority.LOW: (),
}


class EscalationPolicy(BaseModel):
    """Seconds after the ``raised`` notice at which an unacknowledged alarm escalates.

    One entry per level (level 1 at the first time, level 2 at the second, ...), per priority; a
    priority that is missing or has no times never escalates.

    >>> EscalationPolicy.model_validate({"after_s": {"critical": [60, 300]}}).thresholds_us(
    ...     Priority.CRITICAL)
    (60000000, 300000000)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    after_s: dict[Priority, tuple[float, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_ESCALATION_S)
    )

    @field_validator("after_s")
    @classmethod
    def _increasing(
        cls, after: dict[Priority, tuple[float, ...]]
    ) -> dict[Priority, tuple[float, ...]]:
        for priority, times in after.items():
            if not all(t > 0 and math.isfinite(t) for t in times):
                raise ValueError(f"escalation times of {priority} must be positive seconds")
            if any(b <= a for a, b in itertools.pairwise(times)):
                raise ValueError(f"escalation times of {priority} must increase level by level")
        return after

    def thresholds_us(self, priority: Priority) -> tuple[int, ...]:
        return tuple(round(t * 1e6) for t in self.after_s.get(priority, ()))


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConditionActive:
    """The rule's condition is active (again: a repeat while active is only counted)."""

    name: ClassVar[str] = "condition_active"
    ts_us: int
    value: Value = None


@dataclass(frozen=True, slots=True)
class ConditionCleared:
    name: ClassVar[str] = "condition_cleared"
    ts_us: int
    value: Value = None


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """A person takes note of the alarm (确认); only an unacknowledged alarm can be."""

    name: ClassVar[str] = "acknowledge"
    ts_us: int
    user: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Shelve:
    """An operator silences the alarm until ``until_us`` (搁置); shelving again moves the time."""

    name: ClassVar[str] = "shelve"
    ts_us: int
    user: str
    until_us: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unshelve:
    name: ClassVar[str] = "unshelve"
    ts_us: int
    user: str


@dataclass(frozen=True, slots=True)
class Suppress:
    """Suppressed by design (抑制), e.g. while the machine is in a planned stop."""

    name: ClassVar[str] = "suppress"
    ts_us: int
    reason: str = ""
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Unsuppress:
    name: ClassVar[str] = "unsuppress"
    ts_us: int
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed: shelves expire, unacknowledged alarms escalate."""

    name: ClassVar[str] = "tick"
    ts_us: int


AlarmEvent = (
    ConditionActive
    | ConditionCleared
    | Acknowledge
    | Shelve
    | Unshelve
    | Suppress
    | Unsuppress
    | Tick
)


def condition_event(transition: Transition) -> ConditionActive | ConditionCleared:
    """The alarm event of a rule's transition.

    >>> condition_event(Transition("hot", "activated", 5, 91.5))
    ConditionActive(ts_us=5, value=91.5)
    """
    if transition.kind == "activated":
        return ConditionActive(transition.ts_us, transition.value)
    return ConditionCleared(transition.ts_us, transition.value)


# --- results -----------------------------------------------------------------------------------

NotifyKind = Literal["raised", "cleared", "escalated"]


@dataclass(frozen=True, slots=True)
class Notify:
    """Someone should be told: deliver by webhook, e-mail, andon light, ... (the caller's job).

    ``occurrence`` numbers the alarm's occurrences, so that a receiver can pair ``raised`` with
    its ``cleared``; ``level`` is the escalation level of an ``escalated`` notice.
    """

    kind: NotifyKind
    alarm_id: str
    priority: Priority
    ts_us: int
    occurrence: int
    state: AlarmState
    level: int = 0
    value: Value = None
    message: str = ""

    def to_payload(self) -> dict[str, Any]:
        """JSON-compatible data for a webhook."""
        return {**asdict(self), "priority": self.priority.value, "state": self.state.value}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the alarm's history: who did what when, and the state before and after."""

    ts_us: int
    event: str
    user: str | None
    from_state: AlarmState
    to_state: AlarmState
    detail: str = ""


class AlarmActionError(Conflict):
    """The action does not apply in the alarm's state (acknowledging a NORMAL alarm ...).

    Nothing changed; the API answers 409 with the message.
    """


# --- the alarm ---------------------------------------------------------------------------------


@dataclass
class Alarm:
    """One alarm (one rule on one machine) and its lifecycle.

    ``active`` is the condition, ``acknowledged`` whether the current occurrence is (an alarm
    that never occurred counts as acknowledged), ``occurrence`` counts occurrences and
    ``repeats`` the deduplicated ``condition_active`` events within the current one,
    ``raised_us`` is when its ``raised`` went out (``None``: not announced, e.g. while shelved),
    ``told`` whether anyone was told since the last acknowledgement, ``escalation_level`` the
    last level notified. ``audit`` is the history, oldest first. Change it only by events.

    >>> alarm = Alarm("press3.oil_hot", Priority.HIGH)
    >>> [n.kind for n in alarm.condition_active(0, 91.5)], alarm.state.value
    (['raised'], 'unack_active')
    >>> [n.kind for n in alarm.condition_cleared(60_000_000)], alarm.state.value
    (['cleared'], 'unack_rtn')
    >>> alarm.acknowledge(90_000_000, "li.wei", "oil cooler fan replaced"), alarm.state.value
    ([], 'normal')
    >>> [(a.event, a.from_state.value, a.to_state.value) for a in alarm.audit][-1]
    ('acknowledge', 'unack_rtn', 'normal')
    """

    alarm_id: str
    priority: Priority = Priority.MEDIUM
    escalation: EscalationPolicy = field(default_factory=EscalationPolicy)
    message: str = ""
    active: bool = False
    acknowledged: bool = True
    suppressed: bool = False
    shelved_until_us: int | None = None
    occurrence: int = 0
    repeats: int = 0
    raised_us: int | None = None
    told: bool = False
    escalation_level: int = 0
    last_value: Value = None
    audit: list[AuditEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.priority = Priority(self.priority)

    # --- the state ---

    @property
    def underlying_state(self) -> AlarmState:
        """The ISA-18.2 state, overlays aside."""
        if self.active:
            return AlarmState.ACK_ACTIVE if self.acknowledged else AlarmState.UNACK_ACTIVE
        return AlarmState.NORMAL if self.acknowledged else AlarmState.UNACK_RTN

    @property
    def state(self) -> AlarmState:
        """What the operator sees: the overlay if there is one, else the underlying state."""
        if self.suppressed:
            return AlarmState.SUPPRESSED
        if self.shelved:
            return AlarmState.SHELVED
        return self.underlying_state

    @property
    def shelved(self) -> bool:
        return self.shelved_until_us is not None

    @property
    def overlaid(self) -> bool:
        return self.suppressed or self.shelved

    @property
    def announced(self) -> bool:
        """Whether the current occurrence's ``raised`` went out."""
        return self.raised_us is not None

    # --- events ---

    def apply(self, event: AlarmEvent) -> list[Notify]:
        """Apply one event; return what to announce. A shelf that has expired ends first.

        Raises :class:`AlarmActionError` (or ``InvalidInput`` for a malformed action) when the
        action does not apply; then nothing changed, not even an expired shelf.
        """
        refusal = self._refusal(event)
        if refusal is not None:
            raise refusal
        return self._expire_shelf(event.ts_us) + self._handle(event)

    def _handle(self, event: AlarmEvent) -> list[Notify]:
        match event:
            case ConditionActive():
                return self._on_condition_active(event)
            case ConditionCleared():
                return self._on_condition_cleared(event)
            case Acknowledge():
                return self._on_acknowledge(event)
            case Shelve():
                return self._on_shelve(event)
            case Unshelve():
                return self._end_shelf(event.ts_us, event.name, event.user)
            case Suppress():
                return self._on_suppress(event)
            case Unsuppress():
                return self._on_unsuppress(event)
            case Tick():
                return self._escalate(event.ts_us)

    def _refusal(self, event: AlarmEvent) -> ClusterBrainError | None:
        """Why the action cannot apply at its time (with an expired shelf already ended)."""
        if isinstance(event, Acknowledge | Shelve | Unshelve) and not event.user.strip():
            return InvalidInput("the user who acts on the alarm is required", field="user")
        match event:
            case Acknowledge() if self.acknowledged:
                state = self.underlying_state
                return AlarmActionError(
                    f"alarm {self.alarm_id} has nothing to acknowledge ({state})"
                )
            case Shelve() if event.until_us <= event.ts_us:
                return InvalidInput("a shelf must end after it begins", field="until_us")
            case Unshelve() if not self.shelved_at(event.ts_us):
                return AlarmActionError(f"alarm {self.alarm_id} is not shelved")
            case Suppress() if self.suppressed:
                return AlarmActionError(f"alarm {self.alarm_id} is already suppressed")
            case Unsuppress() if not self.suppressed:
                return AlarmActionError(f"alarm {self.alarm_id} is not suppressed")
        return None

    def shelved_at(self, ts_us: int) -> bool:
        """Whether the alarm is still shelved at ``ts_us`` (the shelf ends at its time)."""
        return self.shelved_until_us is not None and ts_us < self.shelved_until_us

    def condition_active(self, ts_us: int, value: Value = None) -> list[Notify]:
        return self.apply(ConditionActive(ts_us, value))

    def condition_cleared(self, ts_us: int, value: Value = None) -> list[Notify]:
        return self.apply(ConditionCleared(ts_us, value))

    def acknowledge(self, ts_us: int, user: str, comment: str = "") -> list[Notify]:
        return self.apply(Acknowledge(ts_us, user, comment))

    def shelve(self, ts_us: int, user: str, until_us: int, reason: str = "") -> list[Notify]:
        return self.apply(Shelve(ts_us, user, until_us, reason))

    def unshelve(self, ts_us: int, user: str) -> list[Notify]:
        return self.apply(Unshelve(ts_us, user))

    def suppress(self, ts_us: int, reason: str = "", user: str | None = None) -> list[Notify]:
        return self.apply(Suppress(ts_us, reason, user))

    def unsuppress(self, ts_us: int, user: str | None = None) -> list[Notify]:
        return self.apply(Unsuppress(ts_us, user))

    def tick(self, now_us: int) -> list[Notify]:
        return self.apply(Tick(now_us))

    # --- handlers: the action was checked by ``_refusal`` ---

    def _on_condition_active(self, event: ConditionActive) -> list[Notify]:
        self.last_value = event.value
        if self.active:
            self.repeats += 1  # deduplicated: the same occurrence
            return []
        before = self.state
        self.active, self.acknowledged = True, False
        self.occurrence += 1
        self.repeats, self.escalation_level, self.raised_us = 0, 0, None
        out = [] if self.overlaid else [self._raise(event.ts_us)]
        self._record(event.ts_us, event.name, None, before, f"occurrence {self.occurrence}")
        return out

    def _on_condition_cleared(self, event: ConditionCleared) -> list[Notify]:
        if not self.active:
            return []
        before = self.state
        self.active, self.last_value = False, event.value
        detail = ""
        if not self.told and not self.acknowledged:
            self.acknowledged = True
            detail = "never announced (shelved or suppressed): needs no acknowledgement"
        out = [self._notify("cleared", event.ts_us)] if self.announced else []
        self._record(event.ts_us, event.name, None, before, detail)
        return out

    def _on_acknowledge(self, event: Acknowledge) -> list[Notify]:
        before = self.state
        self.acknowledged, self.told = True, False
        self._record(event.ts_us, event.name, event.user, before, event.comment)
        return []

    def _on_shelve(self, event: Shelve) -> list[Notify]:
        before = self.state
        self.shelved_until_us = event.until_us
        detail = f"until {event.until_us}" + (f": {event.reason}" if event.reason else "")
        self._record(event.ts_us, event.name, event.user, before, detail)
        return []

    def _on_suppress(self, event: Suppress) -> list[Notify]:
        before = self.state
        self.suppressed = True
        self._record(event.ts_us, event.name, event.user, before, event.reason)
        return []

    def _on_unsuppress(self, event: Unsuppress) -> list[Notify]:
        before = self.state
        self.suppressed = False
        self._record(event.ts_us, event.name, event.user, before)
        return self._announce_if_due(event.ts_us)

    # --- helpers ---

    def _expire_shelf(self, now_us: int) -> list[Notify]:
        if self.shelved_until_us is None or now_us < self.shelved_until_us:
            return []
        return self._end_shelf(now_us, "shelve_expired", None)

    def _end_shelf(self, ts_us: int, event: str, user: str | None) -> list[Notify]:
        before = self.state
        self.shelved_until_us = None
        self._record(ts_us, event, user, before)
        return self._announce_if_due(ts_us)

    def _announce_if_due(self, ts_us: int) -> list[Notify]:
        """After an overlay: an active occurrence nobody was told about is raised now."""
        if self.overlaid or not self.active or self.acknowledged or self.announced:
            return []
        return [self._raise(ts_us)]

    def _raise(self, ts_us: int) -> Notify:
        self.raised_us, self.told = ts_us, True
        return self._notify("raised", ts_us)

    def _escalate(self, now_us: int) -> list[Notify]:
        """One ``escalated`` per level reached while UNACK_ACTIVE since the ``raised``."""
        if self.state is not AlarmState.UNACK_ACTIVE or self.raised_us is None:
            return []
        thresholds = self.escalation.thresholds_us(self.priority)
        out: list[Notify] = []
        while (
            self.escalation_level < len(thresholds)
            and now_us - self.raised_us >= thresholds[self.escalation_level]
        ):
            self.escalation_level += 1
            out.append(self._notify("escalated", now_us, level=self.escalation_level))
            self._record(now_us, "escalate", None, self.state, f"level {self.escalation_level}")
        return out

    def _notify(self, kind: NotifyKind, ts_us: int, *, level: int = 0) -> Notify:
        return Notify(
            kind,
            self.alarm_id,
            self.priority,
            ts_us,
            self.occurrence,
            self.state,
            level,
            self.last_value,
            self.message,
        )

    def _record(
        self, ts_us: int, event: str, user: str | None, before: AlarmState, detail: str = ""
    ) -> None:
        self.audit.append(AuditEntry(ts_us, event, user, before, self.state, detail))

    # --- persistence ---

    def to_dict(self) -> dict[str, Any]:
        """The whole alarm as JSON-compatible data, for the service to store.

        >>> alarm = Alarm("a", Priority.LOW)
        >>> _ = alarm.condition_active(1)
        >>> Alarm.from_dict(alarm.to_dict()) == alarm
        True
        """
        data = asdict(self)
        data["escalation"] = self.escalation.model_dump(mode="json")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alarm:
        fields = dict(data)
        fields["priority"] = Priority(fields["priority"])
        fields["escalation"] = EscalationPolicy.model_validate(fields["escalation"])
        fields["audit"] = [_audit_entry(entry) for entry in fields.get("audit", [])]
        return cls(**fields)


def _audit_entry(data: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        int(data["ts_us"]),
        str(data["event"]),
        data.get("user"),
        AlarmState(data["from_state"]),
        AlarmState(data["to_state"]),
        str(data.get("detail", "")),
    )
