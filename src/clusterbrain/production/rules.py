"""Rules that watch a machine's tags and say when a condition becomes active and when it clears.

A rule is a small JSON document an engineer writes in the console (``ThresholdRule``,
``RateOfChangeRule``, ``NoDataRule``, ``StateDurationRule``, ``ExpressionRule``; see
``docs/alarms.md``). Its evaluator is a stateful object fed with time-ordered samples
``(ts_us, tag, value)`` — or a :class:`~clusterbrain.production.states.SignalFrame` of columns —
that returns :class:`Transition` events. The alarm lifecycle (``alarms.py``) turns those into
alarms; this module knows nothing about acknowledgement or notification.

Conventions, shared with ``states.py``:

- Time is int epoch microseconds and always passed in; nothing here reads a clock.
- Sample and hold: a value holds from its sample until the next one. A delay ("holds for 10 s")
  is therefore decided at the next sample or at a :meth:`RuleEvaluator.tick`, and the transition
  is dated when the delay elapsed, not when it was noticed, so the result does not depend on how
  often the caller ticks.
- Absent values (``None``, NaN) are not samples.
- A sample older than the evaluator's clock (the latest sample or tick) is applied at the clock's
  time: late data still counts, and each rule's transitions stay in time order.

The evaluation-error contract: a rule that cannot be evaluated on the data it gets (text where it
needs a number, division by zero in an expression) raises :class:`RuleEvaluationError`, carrying
the rule id, a reason for the user, the sample time and the transitions made earlier in the same
call. The evaluator is spent after that: every further call raises the same error. The caller
disables the rule and shows the reason; :class:`RuleSet` does exactly that, per rule, while the
other rules go on.
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from clusterbrain.platform.errors import ClusterBrainError, InvalidInput
from clusterbrain.production.expressions import (
    Expression,
    ExpressionEvaluationError,
    Value,
    parse_expression,
)
from clusterbrain.production.states import DEFAULT_STATE_MAP, MachineState, SignalFrame

TransitionKind = Literal["activated", "cleared"]


class Sample(NamedTuple):
    """One tag value at one time: ``ts_us`` epoch microseconds."""

    ts_us: int
    tag: str
    value: Value


Samples = Iterable[Sample | tuple[int, str, Value]] | SignalFrame
"""What evaluators accept: time-ordered sample tuples, or a frame of columns."""


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule's condition became active, or cleared, at ``ts_us``.

    ``value`` is what the rule looked at (the tag value, the rate, the expression's result);
    ``context`` holds what a person needs to understand it (tag, limit, the expression's inputs).
    """

    rule_id: str
    kind: TransitionKind
    ts_us: int
    value: Value = None
    context: Mapping[str, Value] = field(default_factory=dict)


class RuleEvaluationError(ClusterBrainError):
    """A rule cannot be evaluated on its data; disable the rule and show ``reason``.

    ``transitions`` are those the rule made in the same call before it failed: they happened.
    """

    status = 422
    title = "Rule evaluation failed"
    type_slug = "rule-evaluation"

    def __init__(self, rule_id: str, reason: str, *, ts_us: int | None = None) -> None:
        at = "" if ts_us is None else f" at {ts_us} µs"
        super().__init__(f"rule {rule_id!r} failed{at}: {reason}")
        self.rule_id = rule_id
        self.reason = reason
        self.ts_us = ts_us
        self.transitions: tuple[Transition, ...] = ()


# --- rule documents ----------------------------------------------------------------------------

RuleId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$")]
TagName = Annotated[str, Field(min_length=1, max_length=200)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _RuleBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    id: RuleId

    @property
    def tags(self) -> frozenset[str] | None:
        """The tags the rule reads; ``None`` for every tag."""
        raise NotImplementedError

    def evaluator(self) -> RuleEvaluator:
        """A fresh evaluator, with no history."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The rule as JSON-compatible data: its type, id and the settings that differ."""
        return {"type": self.type, **self.model_dump(mode="json", exclude_defaults=True)}


class ThresholdRule(_RuleBase):
    """``tag op limit`` for ``delay_s``; clears when back beyond ``limit ∓ deadband``.

    The deadband is the hysteresis that keeps a value hovering at the limit from raising and
    clearing the alarm on every sample: ``>`` 80 with deadband 2 clears at or below 78.
    """

    type: Literal["threshold"] = "threshold"
    tag: TagName
    op: Literal[">", "<", ">=", "<="]
    limit: Annotated[float, Field(allow_inf_nan=False)]
    deadband: Seconds = 0.0
    delay_s: Seconds = 0.0

    @property
    def tags(self) -> frozenset[str]:
        return frozenset({self.tag})

    def evaluator(self) -> ThresholdEvaluator:
        return ThresholdEvaluator(self)


class RateOfChangeRule(_RuleBase):
    """Active while ``|v(t) − v(t − window_s)| / window_s`` exceeds ``max_rate_per_s``.

    ``v`` is the sample-and-hold value, so a step of size *s* reads as a rate of
    ``s / window_s`` for one window, and a steady ramp reads as its slope.
    """

    type: Literal["rate_of_change"] = "rate_of_change"
    tag: TagName
    max_rate_per_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    window_s: PositiveSeconds

    @property
    def tags(self) -> frozenset[str]:
        return frozenset({self.tag})

    def evaluator(self) -> RateOfChangeEvaluator:
        return RateOfChangeEvaluator(self)


class NoDataRule(_RuleBase):
    """Active when ``tag`` (any tag when ``None``) has had no sample for more than ``timeout_s``.

    The device is offline, or its sensor is. Silence is only noticed on a later sample or a
    :meth:`RuleEvaluator.tick`; the watch starts at the first sample or tick.
    """

    type: Literal["no_data"] = "no_data"
    tag: TagName | None = None
    timeout_s: PositiveSeconds

    @property
    def tags(self) -> frozenset[str] | None:
        return None if self.tag is None else frozenset({self.tag})

    def evaluator(self) -> NoDataEvaluator:
        return NoDataEvaluator(self)


class StateDurationRule(_RuleBase):
    """Active once the machine has been in ``state`` for ``min_duration_s`` ("down > 10 min").

    ``state`` is a :class:`MachineState` (which also matches the values that
    :data:`~clusterbrain.production.states.DEFAULT_STATE_MAP` maps to it, e.g. ``down``) or the
    machine's own raw text (``"ALARM"``), matched exactly. ``tag`` is where the state is.
    """

    type: Literal["state_duration"] = "state_duration"
    tag: TagName = "state"
    state: Annotated[
        MachineState | Annotated[str, Field(min_length=1)], Field(union_mode="left_to_right")
    ]
    min_duration_s: Seconds

    @property
    def tags(self) -> frozenset[str]:
        return frozenset({self.tag})

    def evaluator(self) -> StateDurationEvaluator:
        return StateDurationEvaluator(self)

    def matches(self, value: Value) -> bool:
        """Whether a state sample is this rule's state.

        >>> rule = StateDurationRule(id="down", state="unplanned_down", min_duration_s=600)
        >>> rule.matches("down"), rule.matches("unplanned_down"), rule.matches("running")
        (True, True, False)
        """
        text = _state_text(value)
        if isinstance(self.state, MachineState):
            return DEFAULT_STATE_MAP.get(text) is self.state
        return text == self.state


class ExpressionRule(_RuleBase):
    """Active when ``expression`` has been true for ``delay_s`` (see ``expressions.py``).

    An expression that is unknown (a tag without a value yet) never activates the rule, and does
    not clear an active one either: only a known false clears it.
    """

    type: Literal["expression"] = "expression"
    expression: Annotated[str, Field(min_length=1)]
    delay_s: Seconds = 0.0

    @field_validator("expression")
    @classmethod
    def _allowed(cls, text: str) -> str:
        parse_expression(text)  # raises ExpressionRejected (a ValueError) naming the construct
        return text

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.compiled().tags)

    def compiled(self) -> Expression:
        return parse_expression(self.expression)

    def evaluator(self) -> ExpressionEvaluator:
        return ExpressionEvaluator(self)


AnyRule = ThresholdRule | RateOfChangeRule | NoDataRule | StateDurationRule | ExpressionRule
Rule = Annotated[AnyRule, Field(discriminator="type")]


@functools.cache
def _rule_adapter() -> TypeAdapter[AnyRule]:
    """Built on first use, not at import."""
    return TypeAdapter(Rule)


def parse_rule(data: Mapping[str, Any] | str | bytes) -> AnyRule:
    """A rule from JSON text or JSON-compatible data; ``type`` says which kind.

    >>> rule = parse_rule('{"type": "threshold", "id": "oil_hot", "tag": "oil_temp", '
    ...                   '"op": ">", "limit": 60, "deadband": 2}')
    >>> rule.limit, parse_rule(rule.to_dict()) == rule
    (60.0, True)
    """
    adapter = _rule_adapter()
    if isinstance(data, str | bytes):
        return adapter.validate_json(data)
    return adapter.validate_python(data)


# --- samples -----------------------------------------------------------------------------------


def is_missing(value: object) -> bool:
    """``None`` and NaN mean *no value*, as in a :class:`SignalFrame`."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def iter_samples(samples: Samples) -> Iterator[Sample]:
    """Samples from tuples or from a frame's columns (row by row, in time order).

    >>> frame = SignalFrame.from_arrays([0, 1], {"a": [1.0, None], "b": [None, "on"]})
    >>> list(iter_samples(frame))
    [Sample(ts_us=0, tag='a', value=1.0), Sample(ts_us=1000000, tag='b', value='on')]
    """
    if isinstance(samples, SignalFrame):
        yield from _frame_samples(samples)
        return
    for ts_us, tag, value in samples:
        yield Sample(int(ts_us), tag, value)


def _frame_samples(frame: SignalFrame) -> Iterator[Sample]:
    frame = frame.in_time_order()
    columns = [(tag, column.tolist()) for tag, column in frame.columns.items()]
    for row, ts_us in enumerate(frame.ts_us.tolist()):
        for tag, values in columns:
            if not is_missing(values[row]):
                yield Sample(ts_us, tag, values[row])


def _micros(seconds: float) -> int:
    return round(seconds * 1e6)


def _state_text(value: Value) -> str:
    """State values as text: ``2.0`` → ``"2"``, ``True`` → ``"true"`` (as ``states.py`` maps)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- evaluators --------------------------------------------------------------------------------


class RuleEvaluator:
    """The state of one rule between calls: feed samples in time order, tick when idle.

    Subclasses implement ``_on_sample`` (one present sample of one of ``tags``, at a time never
    before the previous one), and optionally ``_on_tick`` and ``_on_batch_end``.
    """

    def __init__(self, rule_id: str, tags: frozenset[str] | None) -> None:
        self.rule_id = rule_id
        self.tags = tags
        self.clock_us: int | None = None
        self.failure: RuleEvaluationError | None = None

    @property
    def active(self) -> bool:
        raise NotImplementedError

    def resume_active(self) -> None:
        """Start as active: the condition was active when this evaluator replaced another (its
        alarm is still active), so that the next clearing sample clears it."""
        latch: _Latch | None = getattr(self, "_latch", None)
        if latch is None:
            raise NotImplementedError
        latch.active, latch.since_us = True, None

    def evaluate(self, samples: Samples) -> list[Transition]:
        """Transitions caused by these samples, in time order.

        Raises :class:`RuleEvaluationError` when the rule cannot be evaluated; see the module.
        """
        self._check_usable()
        out: list[Transition] = []
        try:
            for ts_us, tag, value in iter_samples(samples):
                if (self.tags is None or tag in self.tags) and not is_missing(value):
                    out += self._on_sample(self._advance(ts_us), tag, value)
            out += self._on_batch_end()
        except RuleEvaluationError as error:
            self._fail(error, out)
            raise
        return out

    def tick(self, now_us: int) -> list[Transition]:
        """Transitions due by ``now_us`` without new samples (delays elapsed, silence)."""
        self._check_usable()
        try:
            return self._on_tick(self._advance(int(now_us)))
        except RuleEvaluationError as error:
            self._fail(error, [])
            raise

    def _advance(self, ts_us: int) -> int:
        if self.clock_us is not None and ts_us < self.clock_us:
            return self.clock_us
        self.clock_us = ts_us
        return ts_us

    def _check_usable(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _fail(self, error: RuleEvaluationError, done: list[Transition]) -> None:
        error.transitions = tuple(done)
        self.failure = error

    def _error(self, reason: str, ts_us: int) -> RuleEvaluationError:
        return RuleEvaluationError(self.rule_id, reason, ts_us=ts_us)

    def _number(self, tag: str, value: Value, ts_us: int) -> float:
        if isinstance(value, int | float):
            return float(value)
        raise self._error(
            f"tag {tag!r} has the text value {value!r}; this rule needs numbers", ts_us
        )

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        raise NotImplementedError

    def _on_tick(self, now_us: int) -> list[Transition]:
        return []

    def _on_batch_end(self) -> list[Transition]:
        return []


@dataclass(slots=True)
class _Latch:
    """A condition with an activation delay and a separate clearing test (for hysteresis).

    Not active: while ``on`` holds the delay runs (from the first such sample); anything else
    restarts it. Active: ``off`` clears at once; anything else keeps it active.
    """

    rule_id: str
    delay_us: int
    active: bool = False
    since_us: int | None = None
    held: tuple[Value, dict[str, Value]] = (None, {})

    def advance(self, now_us: int) -> list[Transition]:
        """Activate if the pending condition has held (sample and hold) for the delay."""
        if self.active or self.since_us is None or now_us - self.since_us < self.delay_us:
            return []
        self.active = True
        value, context = self.held
        return [
            Transition(self.rule_id, "activated", self.since_us + self.delay_us, value, context)
        ]

    def observe(
        self, ts_us: int, on: bool, off: bool, value: Value, context: Mapping[str, Value]
    ) -> list[Transition]:
        out = self.advance(ts_us)
        if self.active:
            if off:
                self.active, self.since_us = False, None
                out.append(Transition(self.rule_id, "cleared", ts_us, value, dict(context)))
            return out
        if not on:
            self.since_us = None
            return out
        if self.since_us is None:
            self.since_us = ts_us
        self.held = (value, dict(context))
        return out + self.advance(ts_us)


_TESTS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_OPPOSITE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}


class ThresholdEvaluator(RuleEvaluator):
    """Hysteresis: activate beyond ``limit`` (after the delay), clear beyond the deadband."""

    def __init__(self, rule: ThresholdRule) -> None:
        super().__init__(rule.id, rule.tags)
        self.rule = rule
        self._latch = _Latch(rule.id, _micros(rule.delay_s))
        self._activates = _TESTS[rule.op]
        self._clears = _TESTS[_OPPOSITE[rule.op]]
        self.clear_limit = clear_limit(rule)

    @property
    def active(self) -> bool:
        return self._latch.active

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        x = self._number(tag, value, ts_us)
        on, off = self._activates(x, self.rule.limit), self._clears(x, self.clear_limit)
        context: dict[str, Value] = {"tag": tag, "op": self.rule.op, "limit": self.rule.limit}
        return self._latch.observe(ts_us, on, off, x, context)

    def _on_tick(self, now_us: int) -> list[Transition]:
        return self._latch.advance(now_us)


def clear_limit(rule: ThresholdRule) -> float:
    """Where an active threshold clears: the limit moved back by the deadband.

    >>> clear_limit(ThresholdRule(id="hot", tag="t", op=">", limit=80, deadband=2))
    78.0
    >>> clear_limit(ThresholdRule(id="low", tag="p", op="<=", limit=5, deadband=0.5))
    5.5
    """
    back = -rule.deadband if rule.op in (">", ">=") else rule.deadband
    return rule.limit + back


class RateOfChangeEvaluator(RuleEvaluator):
    """The windowed rate, re-evaluated wherever it can change: at samples and window exits.

    With sample and hold, ``v(t) − v(t − W)`` changes only at a sample time ``s`` and at
    ``s + W`` (when the sample leaves the window), so evaluating exactly there gives exact
    transition times however sparse the samples or the ticks are.
    """

    def __init__(self, rule: RateOfChangeRule) -> None:
        super().__init__(rule.id, rule.tags)
        self.rule = rule
        self._window_us = _micros(rule.window_s)
        self._times: list[int] = []
        self._values: list[float] = []
        self._evaluated_us: int | None = None
        self._latch = _Latch(rule.id, 0)

    @property
    def active(self) -> bool:
        return self._latch.active

    def rate_at(self, t_us: int) -> float | None:
        """``(v(t) − v(t − W)) / W``, or ``None`` before a full window of history."""
        now = bisect.bisect_right(self._times, t_us) - 1
        then = bisect.bisect_right(self._times, t_us - self._window_us) - 1
        if now < 0 or then < 0:
            return None
        return (self._values[now] - self._values[then]) / self.rule.window_s

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        x = self._number(tag, value, ts_us)
        out = self._window_exits(ts_us)  # first what the held value did up to now, as a tick
        if self._times and self._times[-1] == ts_us:
            self._values[-1] = x  # same time: the later sample wins
        else:
            self._times.append(ts_us)
            self._values.append(x)
        out += self._evaluate_at(ts_us)
        self._forget(ts_us)
        return out

    def _on_tick(self, now_us: int) -> list[Transition]:
        out = self._window_exits(now_us)
        self._forget(now_us)
        return out

    def _window_exits(self, end_us: int) -> list[Transition]:
        """Evaluate at every ``s + W`` after the last evaluation, up to ``end_us``."""
        start = self._evaluated_us
        first = 0 if start is None else bisect.bisect_right(self._times, start - self._window_us)
        out: list[Transition] = []
        for s in self._times[first:]:
            t = s + self._window_us
            if t > end_us:
                break
            out += self._evaluate_at(t)
        return out

    def _evaluate_at(self, t_us: int) -> list[Transition]:
        self._evaluated_us = t_us
        rate = self.rate_at(t_us)
        if rate is None:
            return []
        over = abs(rate) > self.rule.max_rate_per_s
        context: dict[str, Value] = {
            "tag": self.rule.tag,
            "max_rate_per_s": self.rule.max_rate_per_s,
            "window_s": self.rule.window_s,
        }
        return self._latch.observe(t_us, over, not over, rate, context)

    def _forget(self, now_us: int) -> None:
        """Keep the samples from the last one at or before ``now − W`` on; nothing older counts."""
        keep = max(bisect.bisect_right(self._times, now_us - self._window_us) - 1, 0)
        if keep:
            del self._times[:keep], self._values[:keep]


class NoDataEvaluator(RuleEvaluator):
    """Silence longer than the timeout: activated when it began to count, cleared by data."""

    def __init__(self, rule: NoDataRule) -> None:
        super().__init__(rule.id, rule.tags)
        self.rule = rule
        self._timeout_us = _micros(rule.timeout_s)
        self.last_seen_us: int | None = None
        self._active = False

    @property
    def active(self) -> bool:
        return self._active

    def resume_active(self) -> None:
        self._active = True

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        out = self._on_tick(ts_us)
        if self._active:
            self._active = False
            silent = None if self.last_seen_us is None else (ts_us - self.last_seen_us) / 1e6
            context: dict[str, Value] = {"tag": tag, "silent_s": silent}
            out.append(Transition(self.rule_id, "cleared", ts_us, value, context))
        self.last_seen_us = ts_us
        return out

    def _on_tick(self, now_us: int) -> list[Transition]:
        if self.last_seen_us is None:
            self.last_seen_us = now_us  # the watch starts now
            return []
        if self._active or now_us - self.last_seen_us <= self._timeout_us:
            return []
        self._active = True
        context: dict[str, Value] = {"tag": self.rule.tag, "last_seen_us": self.last_seen_us}
        return [
            Transition(
                self.rule_id, "activated", self.last_seen_us + self._timeout_us, None, context
            )
        ]


class StateDurationEvaluator(RuleEvaluator):
    """In the state for the minimum duration: activated then; cleared on any other state."""

    def __init__(self, rule: StateDurationRule) -> None:
        super().__init__(rule.id, rule.tags)
        self.rule = rule
        self._latch = _Latch(rule.id, _micros(rule.min_duration_s))

    @property
    def active(self) -> bool:
        return self._latch.active

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        match = self.rule.matches(value)
        context: dict[str, Value] = {"tag": tag, "state": str(self.rule.state)}
        return self._latch.observe(ts_us, match, not match, _state_text(value), context)

    def _on_tick(self, now_us: int) -> list[Transition]:
        return self._latch.advance(now_us)


class ExpressionEvaluator(RuleEvaluator):
    """Evaluates once per timestamp, after all samples of that time are in.

    One MQTT message carries several tags at one time; evaluating after each of them would
    compare a new zone-1 temperature with an old zone-2 one and raise a false alarm.
    """

    def __init__(self, rule: ExpressionRule) -> None:
        self.expression = rule.compiled()
        super().__init__(rule.id, frozenset(self.expression.tags))
        self.rule = rule
        self.values: dict[str, Value] = {}
        self._pending_us: int | None = None
        self._latch = _Latch(rule.id, _micros(rule.delay_s))

    @property
    def active(self) -> bool:
        return self._latch.active

    def _on_sample(self, ts_us: int, tag: str, value: Value) -> list[Transition]:
        out = self._flush() if self._pending_us is not None and ts_us > self._pending_us else []
        self.values[tag] = value
        self._pending_us = ts_us
        return out

    def _on_batch_end(self) -> list[Transition]:
        return self._flush()

    def _on_tick(self, now_us: int) -> list[Transition]:
        return self._flush() + self._latch.advance(now_us)

    def _flush(self) -> list[Transition]:
        ts_us, self._pending_us = self._pending_us, None
        if ts_us is None:
            return []
        try:
            result = self.expression.evaluate(self.values)
        except (ExpressionEvaluationError, ArithmeticError, TypeError, ValueError) as error:
            raise self._error(str(error), ts_us) from error
        holds = None if result is None else bool(result)
        return self._latch.observe(ts_us, holds is True, holds is False, result, self.values)


# --- a machine's rules together ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleSetResult:
    """Transitions of every working rule, ordered by time then rule id; errors of this call."""

    transitions: list[Transition]
    errors: dict[str, RuleEvaluationError]


class RuleSet:
    """Several independent rules over the same samples; one failing rule never stops the others.

    A rule that raises :class:`RuleEvaluationError` is disabled (``disabled`` holds the error
    for display) and skipped until :meth:`enable` gives it a fresh evaluator.

    >>> rules = RuleSet([ThresholdRule(id="hot", tag="t", op=">", limit=80),
    ...                  ExpressionRule(id="ratio", expression="t / flow > 2")])
    >>> result = rules.evaluate([(0, "t", 90.0), (0, "flow", 0.0)])
    >>> [(t.rule_id, t.kind) for t in result.transitions], list(result.errors)
    ([('hot', 'activated')], ['ratio'])
    >>> rules.disabled["ratio"].reason
    'division by zero in `t / flow`'
    """

    def __init__(self, rules: Iterable[AnyRule]) -> None:
        self._rules: dict[str, AnyRule] = {}
        for rule in rules:
            if rule.id in self._rules:
                raise InvalidInput(f"two rules have the id {rule.id!r}", field="id")
            self._rules[rule.id] = rule
        self._evaluators = {rule_id: rule.evaluator() for rule_id, rule in self._rules.items()}
        self._disabled: dict[str, RuleEvaluationError] = {}

    @classmethod
    def from_dicts(cls, documents: Iterable[Mapping[str, Any]]) -> RuleSet:
        return cls(parse_rule(document) for document in documents)

    @property
    def rules(self) -> tuple[AnyRule, ...]:
        return tuple(self._rules.values())

    @property
    def disabled(self) -> dict[str, RuleEvaluationError]:
        """Rules switched off by an evaluation error, with the error (its ``reason`` to show)."""
        return dict(self._disabled)

    @property
    def active(self) -> frozenset[str]:
        """Ids of the working rules whose condition is active."""
        return frozenset(
            rule_id
            for rule_id, evaluator in self._evaluators.items()
            if rule_id not in self._disabled and evaluator.active
        )

    def evaluate(self, samples: Samples) -> RuleSetResult:
        """Feed one batch of time-ordered samples to every working rule."""
        rows = list(iter_samples(samples))
        by_tag: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            by_tag.setdefault(row.tag, []).append(index)
        return self._run(lambda e: e.evaluate(_select(rows, by_tag, e.tags)))

    def tick(self, now_us: int) -> RuleSetResult:
        return self._run(lambda e: e.tick(now_us))

    def carry_over(self, previous: RuleSet | None, active: Iterable[str] = ()) -> None:
        """Continue from the rule set this one replaces (the rules were edited).

        A rule that did not change keeps its evaluator, with its delays, windows and condition
        as they were; a new or changed rule whose id is in ``active`` (its alarm is active)
        starts active, so that its next clearing sample clears the alarm instead of leaving it
        active until the condition comes and goes again.

        >>> old = RuleSet([ThresholdRule(id="hot", tag="t", op=">", limit=80)])
        >>> [t.kind for t in old.evaluate([(0, "t", 90.0)]).transitions]
        ['activated']
        >>> new = RuleSet([ThresholdRule(id="hot", tag="t", op=">", limit=80)])
        >>> new.carry_over(old)
        >>> [t.kind for t in new.evaluate([(1, "t", 50.0)]).transitions]
        ['cleared']
        >>> edited = RuleSet([ThresholdRule(id="hot", tag="t", op=">", limit=85)])
        >>> edited.carry_over(new, active={"hot"})
        >>> [t.kind for t in edited.evaluate([(2, "t", 50.0)]).transitions]
        ['cleared']
        """
        still_active = set(active)
        for rule_id, rule in self._rules.items():
            if previous is not None and previous._rules.get(rule_id) == rule:
                self._evaluators[rule_id] = previous._evaluators[rule_id]
                if rule_id in previous._disabled:
                    self._disabled[rule_id] = previous._disabled[rule_id]
            elif rule_id in still_active:
                self._evaluators[rule_id].resume_active()

    def enable(self, rule_id: str) -> None:
        """Switch a disabled rule back on, with no history (e.g. after the data was fixed)."""
        self._disabled.pop(rule_id, None)
        self._evaluators[rule_id] = self._rules[rule_id].evaluator()

    def _run(self, step: Callable[[RuleEvaluator], list[Transition]]) -> RuleSetResult:
        transitions: list[Transition] = []
        errors: dict[str, RuleEvaluationError] = {}
        for rule_id, evaluator in self._evaluators.items():
            if rule_id in self._disabled:
                continue
            try:
                transitions += step(evaluator)
            except RuleEvaluationError as error:
                transitions += error.transitions
                errors[rule_id] = self._disabled[rule_id] = error
        transitions.sort(key=lambda t: (t.ts_us, t.rule_id))  # stable: keeps each rule's order
        return RuleSetResult(transitions, errors)


def _select(
    rows: Sequence[Sample], by_tag: Mapping[str, list[int]], tags: frozenset[str] | None
) -> Sequence[Sample]:
    """The rows of some tags, still in batch order, without scanning the batch per rule."""
    if tags is None:
        return rows
    indexes = [by_tag[tag] for tag in tags if tag in by_tag]
    if len(indexes) == 1:
        return [rows[i] for i in indexes[0]]
    return [rows[i] for i in heapq.merge(*indexes)]
