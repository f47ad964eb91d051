"""Routes of alarm rules and alarms: list, acknowledge, shelve, suppress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clusterbrain.devices.service import get_device
from clusterbrain.platform.errors import InvalidInput, NotFound
from clusterbrain.platform.export import streamed_export
from clusterbrain.platform.service import get_visible, where_visible
from clusterbrain.platform.tenancy import CONFIGURE_ROLES, Principal
from clusterbrain.platform.web import PrincipalDep, SessionDep, checked_range
from clusterbrain.production import exports
from clusterbrain.production.alarm_engine import DOCUMENT_HISTORY, AlarmEngine
from clusterbrain.production.alarms import Alarm, Notify
from clusterbrain.production.downtime_service import ASSIGN_ROLES
from clusterbrain.production.models import AlarmRecord, AlarmRule
from clusterbrain.production.rules import parse_rule

router = APIRouter(prefix="/api/v1")
NO_CONTENT = status.HTTP_204_NO_CONTENT
PRIORITY = "^(critical|high|medium|low)$"


def get_engine(request: Request) -> AlarmEngine:
    engine: AlarmEngine = request.app.state.alarms
    return engine


EngineDep = Annotated[AlarmEngine, Depends(get_engine)]


class AlarmRuleIn(BaseModel):
    device_id: str
    name: str = Field(min_length=1, max_length=200)
    definition: dict[str, Any] = Field(description="A rule document, see docs/alarms.md.")
    priority: str = Field(default="medium", pattern=PRIORITY)
    message: str = Field(default="", max_length=500)
    webhook_url: str = Field(default="", max_length=500, pattern=r"^(|https?://.+)$")
    emails: list[str] = Field(default_factory=list, max_length=20)
    enabled: bool = True


class AlarmRuleOut(AlarmRuleIn):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
    disabled_reason: str


class AlarmOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    device_id: str
    state: str
    priority: str
    active: bool
    acknowledged: bool
    occurrence: int
    repeats: int
    last_value: float | int | bool | str | None
    message: str
    shelved_until: datetime | None
    history: list[dict[str, Any]]


class CommentIn(BaseModel):
    comment: str = Field(default="", max_length=500)


class ShelveIn(BaseModel):
    until: datetime
    reason: str = Field(default="", max_length=500)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_us(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, UTC)


# --- rules --------------------------------------------------------------------------------------


def _checked_definition(definition: dict[str, Any]) -> dict[str, Any]:
    try:
        rule = parse_rule({**definition, "id": definition.get("id") or "new"})
    except (ValidationError, ValueError) as exc:
        raise InvalidInput(f"definition: {exc}".splitlines()[0][:300], field="definition") from exc
    document = rule.to_dict()
    document.pop("id", None)
    return document


def _rule(session: Session, principal: Principal, rule_id: int) -> AlarmRule:
    return get_visible(session, AlarmRule, rule_id, principal, "alarm rule")


@router.get("/alarm-rules", tags=["alarms"], response_model=list[AlarmRuleOut])
def list_rules(session: SessionDep, principal: PrincipalDep) -> object:
    query = where_visible(
        select(AlarmRule).order_by(AlarmRule.id), AlarmRule.enterprise_id, principal
    )
    return session.scalars(query).all()


@router.post("/alarm-rules", tags=["alarms"], response_model=AlarmRuleOut, status_code=201)
def create_rule(
    body: AlarmRuleIn, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> object:
    """A rule on one device: threshold, rate of change, no data, state duration or expression."""
    principal.require(CONFIGURE_ROLES, "edit alarm rules")
    try:
        device = get_device(session, principal, body.device_id)
    except NotFound as exc:
        raise NotFound(exc.detail, field="device_id") from exc
    data = body.model_dump()
    data["definition"] = _checked_definition(body.definition)
    rule = AlarmRule(enterprise_id=device.enterprise_id, **data)
    session.add(rule)
    session.commit()
    engine.reload()  # after the commit: the engine reads the rules in its own session
    return rule


@router.get("/alarm-rules/{rule_id}", tags=["alarms"], response_model=AlarmRuleOut)
def get_rule(rule_id: int, session: SessionDep, principal: PrincipalDep) -> object:
    return _rule(session, principal, rule_id)


@router.put("/alarm-rules/{rule_id}", tags=["alarms"], response_model=AlarmRuleOut)
def update_rule(
    rule_id: int, body: AlarmRuleIn, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> object:
    """Replace a rule; saving it (re-)enables it unless ``enabled`` is false."""
    rule = _rule(session, principal, rule_id)
    principal.require(CONFIGURE_ROLES, "edit alarm rules")
    try:
        get_device(session, principal, body.device_id)
    except NotFound as exc:
        raise NotFound(exc.detail, field="device_id") from exc
    for key, value in body.model_dump().items():
        setattr(rule, key, value)
    rule.definition = _checked_definition(body.definition)
    rule.disabled_reason = ""
    session.commit()
    engine.reload()  # after the commit, or the engine may read the old rule and keep it
    return rule


@router.delete("/alarm-rules/{rule_id}", tags=["alarms"], status_code=NO_CONTENT)
def delete_rule(
    rule_id: int, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> Response:
    rule = _rule(session, principal, rule_id)
    principal.require(CONFIGURE_ROLES, "edit alarm rules")
    session.delete(rule)
    session.commit()
    engine.reload()
    return Response(status_code=NO_CONTENT)


# --- alarms -------------------------------------------------------------------------------------


def _alarm_out(record: AlarmRecord, rule: AlarmRule) -> AlarmOut:
    alarm = Alarm.from_dict(record.document)
    history = [
        {
            "at": _from_us(entry.ts_us),
            "event": entry.event,
            "user": entry.user,
            "from": entry.from_state.value,
            "to": entry.to_state.value,
            "detail": entry.detail,
        }
        for entry in alarm.audit[-DOCUMENT_HISTORY:]
    ]
    return AlarmOut(
        id=record.id,
        rule_id=rule.id,
        rule_name=rule.name,
        device_id=rule.device_id,
        state=alarm.state.value,
        priority=alarm.priority.value,
        active=alarm.active,
        acknowledged=alarm.acknowledged,
        occurrence=alarm.occurrence,
        repeats=alarm.repeats,
        last_value=alarm.last_value,
        message=alarm.message,
        shelved_until=_from_us(alarm.shelved_until_us),
        history=history,
    )


def _record(session: Session, principal: Principal, alarm_id: int) -> tuple[AlarmRecord, AlarmRule]:
    record = get_visible(session, AlarmRecord, alarm_id, principal, "alarm")
    rule = session.get(AlarmRule, record.rule_id)
    if rule is None:
        raise NotFound(f"alarm {alarm_id} not found")
    return record, rule


@router.get("/alarms", tags=["alarms"], response_model=list[AlarmOut])
def list_alarms(
    session: SessionDep,
    principal: PrincipalDep,
    state: str | None = None,
    priority: str | None = None,
    include_normal: bool = False,
) -> list[AlarmOut]:
    """Alarms that need attention (not normal), newest change first; filter by state, priority."""
    query = where_visible(select(AlarmRecord), AlarmRecord.enterprise_id, principal)
    if state:
        query = query.where(AlarmRecord.state == state)
    elif not include_normal:
        query = query.where(AlarmRecord.state != "normal")
    if priority:
        query = query.where(AlarmRecord.priority == priority)
    records = session.scalars(query.order_by(AlarmRecord.updated_at.desc())).all()
    rules = {
        r.id: r
        for r in session.scalars(
            select(AlarmRule).where(AlarmRule.id.in_({x.rule_id for x in records}))
        )
    }
    return [
        _alarm_out(record, rules[record.rule_id]) for record in records if record.rule_id in rules
    ]


@router.get("/alarms/export", tags=["alarms"])
def export_alarms(
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    device_id: str | None = None,
    priority: Annotated[str | None, Query(pattern=PRIORITY)] = None,
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
) -> StreamingResponse:
    """The alarm journal of a range as CSV or Excel: one row per lifecycle event (raised,
    acknowledged, cleared, shelved ...), oldest first, including alarms of deleted rules."""
    start, end = checked_range(start, end)
    if device_id is not None:
        get_device(session, principal, device_id)
    query = exports.alarm_journal_query(
        principal, start, end, device_id=device_id, priority=priority
    )
    rows = exports.alarm_rows(request.app.state.sessions, query)
    tmp = request.app.state.settings.var_dir / "exports"
    body, media, headers = streamed_export(
        format, "alarms", exports.ALARM_EXPORT_COLUMNS, rows, tmp
    )
    return StreamingResponse(body, media_type=media, headers=headers)


@router.get("/alarms/{alarm_id}", tags=["alarms"], response_model=AlarmOut)
def get_alarm(alarm_id: int, session: SessionDep, principal: PrincipalDep) -> AlarmOut:
    return _alarm_out(*_record(session, principal, alarm_id))


def _act(
    session: Session,
    principal: Principal,
    engine: AlarmEngine,
    alarm_id: int,
    action: Any,
) -> AlarmOut:
    principal.require(ASSIGN_ROLES, "handle alarms")
    record, rule = _record(session, principal, alarm_id)
    engine.act(session, record, action)
    return _alarm_out(record, rule)


def _now_us() -> int:
    return _us(datetime.now(UTC))


@router.post("/alarms/{alarm_id}/acknowledge", tags=["alarms"], response_model=AlarmOut)
def acknowledge(
    alarm_id: int, body: CommentIn, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> AlarmOut:
    def action(alarm: Alarm) -> list[Notify]:
        return alarm.acknowledge(_now_us(), principal.username, body.comment)

    return _act(session, principal, engine, alarm_id, action)


@router.post("/alarms/{alarm_id}/shelve", tags=["alarms"], response_model=AlarmOut)
def shelve(
    alarm_id: int, body: ShelveIn, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> AlarmOut:
    if body.until.tzinfo is None:
        raise InvalidInput("until needs a time zone", field="until")

    def action(alarm: Alarm) -> list[Notify]:
        return alarm.shelve(_now_us(), principal.username, _us(body.until), body.reason)

    return _act(session, principal, engine, alarm_id, action)


@router.post("/alarms/{alarm_id}/unshelve", tags=["alarms"], response_model=AlarmOut)
def unshelve(
    alarm_id: int, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> AlarmOut:
    def action(alarm: Alarm) -> list[Notify]:
        return alarm.unshelve(_now_us(), principal.username)

    return _act(session, principal, engine, alarm_id, action)


@router.post("/alarms/{alarm_id}/suppress", tags=["alarms"], response_model=AlarmOut)
def suppress(
    alarm_id: int, body: CommentIn, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> AlarmOut:
    def action(alarm: Alarm) -> list[Notify]:
        return alarm.suppress(_now_us(), body.comment, principal.username)

    return _act(session, principal, engine, alarm_id, action)


@router.post("/alarms/{alarm_id}/unsuppress", tags=["alarms"], response_model=AlarmOut)
def unsuppress(
    alarm_id: int, session: SessionDep, principal: PrincipalDep, engine: EngineDep
) -> AlarmOut:
    def action(alarm: Alarm) -> list[Notify]:
        return alarm.unsuppress(_now_us(), principal.username)

    return _act(session, principal, engine, alarm_id, action)
