"""Alarms, their lifecycle and their rules."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.table import Table

from clusterbrain.cli.common import _admin_context, _admin_principal, _checked, _refusals, console

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from clusterbrain.platform.tenancy import Principal
    from clusterbrain.production.alarm_api import AlarmOut
    from clusterbrain.production.alarm_engine import AlarmEngine

alarms_app = typer.Typer(help="Alarms and their lifecycle (no command: list).")


def _list_alarms(include_normal: bool) -> None:
    from sqlalchemy import select

    from clusterbrain.platform.db import session_scope
    from clusterbrain.production.alarms import Alarm
    from clusterbrain.production.models import AlarmRecord, AlarmRule

    runtime = _admin_context()
    try:
        with session_scope(runtime.sessions) as session:
            query = select(AlarmRecord, AlarmRule).join(
                AlarmRule, AlarmRule.id == AlarmRecord.rule_id
            )
            if not include_normal:
                query = query.where(AlarmRecord.state != "normal")
            table = Table("alarm", "rule", "device", "priority", "state", "occurrences", "updated")
            for record, rule in session.execute(query.order_by(AlarmRecord.updated_at.desc())):
                alarm = Alarm.from_dict(record.document)
                table.add_row(
                    str(record.id),
                    rule.name,
                    rule.device_id,
                    alarm.priority.value,
                    alarm.state.value,
                    str(alarm.occurrence),
                    f"{record.updated_at:%Y-%m-%d %H:%M:%S}",
                )
            console.print(table)
    finally:
        runtime.close()


IncludeNormal = Annotated[bool, typer.Option(help="Also alarms back to normal.")]


@alarms_app.callback(invoke_without_command=True)
def alarms(ctx: typer.Context, include_normal: IncludeNormal = False) -> None:
    """Alarms; without a command: those that need attention, most recent change first."""
    if ctx.invoked_subcommand is None:
        _list_alarms(include_normal)


@alarms_app.command("list")
def alarms_list(include_normal: IncludeNormal = False) -> None:
    """List alarms that need attention, most recent change first."""
    _list_alarms(include_normal)


def _alarm_table(alarm: AlarmOut) -> Table:
    table = Table("alarm", "rule", "device", "priority", "state", "occurrences", "shelved until")
    table.add_row(
        str(alarm.id),
        alarm.rule_name,
        alarm.device_id,
        alarm.priority,
        alarm.state,
        str(alarm.occurrence),
        f"{alarm.shelved_until:%Y-%m-%d %H:%M} UTC" if alarm.shelved_until else "",
    )
    return table


def _alarm_action(act: Callable[[Session, Principal, AlarmEngine], AlarmOut]) -> None:
    """Run one of the alarm API's lifecycle actions as the platform admin; print the result."""
    from clusterbrain.platform.db import session_scope

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            alarm = act(session, _admin_principal(session), runtime.alarms)
        console.print(_alarm_table(alarm))
    finally:
        runtime.close()


AlarmId = Annotated[int, typer.Argument(help="Alarm id, as `alarms` lists it.")]
Comment = Annotated[str, typer.Option(help="Why, for the audit trail.")]


@alarms_app.command("show")
def alarms_show(alarm_id: AlarmId) -> None:
    """One alarm with its audit trail (the last 50 entries)."""
    from clusterbrain.platform.db import session_scope
    from clusterbrain.production import alarm_api

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            alarm = alarm_api.get_alarm(alarm_id, session, _admin_principal(session))
        console.print(_alarm_table(alarm))
        history = Table("at (UTC)", "event", "user", "from", "to", "detail")
        for entry in alarm.history:
            history.add_row(
                f"{entry['at']:%Y-%m-%d %H:%M:%S}",
                entry["event"],
                entry["user"] or "",
                entry["from"],
                entry["to"],
                entry["detail"],
            )
        console.print(history)
    finally:
        runtime.close()


@alarms_app.command("ack")
def alarms_ack(alarm_id: AlarmId, comment: Comment = "") -> None:
    """Acknowledge an alarm (refused when there is nothing to acknowledge)."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        body = _checked(alarm_api.CommentIn, {"comment": comment}, {"comment": "--comment"})
        return alarm_api.acknowledge(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("shelve")
def alarms_shelve(
    alarm_id: AlarmId,
    minutes: Annotated[float, typer.Option(help="Silence the alarm this long.")],
    reason: Comment = "",
) -> None:
    """Shelve an alarm for a while; shelving again moves the end."""
    from datetime import UTC, timedelta

    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        until = datetime.now(UTC) + timedelta(minutes=minutes)
        data = {"until": until, "reason": reason}
        body = _checked(alarm_api.ShelveIn, data, {"reason": "--reason", "until": "--minutes"})
        return alarm_api.shelve(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("unshelve")
def alarms_unshelve(alarm_id: AlarmId) -> None:
    """End an alarm's shelf early."""
    from clusterbrain.production import alarm_api

    _alarm_action(lambda s, p, e: alarm_api.unshelve(alarm_id, s, p, e))


@alarms_app.command("suppress")
def alarms_suppress(alarm_id: AlarmId, comment: Comment = "") -> None:
    """Suppress an alarm by design, e.g. during a planned stop."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> AlarmOut:
        body = _checked(alarm_api.CommentIn, {"comment": comment}, {"comment": "--comment"})
        return alarm_api.suppress(alarm_id, body, session, principal, engine)

    _alarm_action(act)


@alarms_app.command("unsuppress")
def alarms_unsuppress(alarm_id: AlarmId) -> None:
    """End an alarm's suppression."""
    from clusterbrain.production import alarm_api

    _alarm_action(lambda s, p, e: alarm_api.unsuppress(alarm_id, s, p, e))


# --- alarm rules ----------------------------------------------------------------------------------

rules_app = typer.Typer(
    help="Alarm rules (a running server picks up changes within a few seconds).",
    no_args_is_help=True,
)
alarms_app.add_typer(rules_app, name="rules")

RULE_OPTIONS = {
    "device_id": "--device",
    "name": "--name",
    "definition": "--definition",
    "priority": "--priority",
    "message": "--message",
    "webhook_url": "--webhook",
    "emails": "--email",
    "enabled": "--enabled",
}
RuleId = Annotated[int, typer.Argument(help="Rule id, as `alarms rules list` shows it.")]
DefinitionOption = Annotated[
    str | None,
    typer.Option(
        "--definition",
        help="The rule document as JSON, or @file with JSON or YAML (see docs/alarms.md).",
    ),
]
PriorityOption = Annotated[
    str | None, typer.Option(help="low, medium, high or critical (default medium).")
]
MessageOption = Annotated[str | None, typer.Option(help="Text of the notification.")]
WebhookOption = Annotated[str | None, typer.Option("--webhook", help="URL to POST alarms to.")]
EmailOption = Annotated[
    list[str] | None, typer.Option("--email", help="Address to e-mail (repeat for several).")
]
EnabledOption = Annotated[
    bool | None, typer.Option("--enabled/--disabled", help="Evaluate the rule or not.")
]


def _given(**options: Any) -> dict[str, Any]:
    """The options the command line gave: not None, and not an empty repeated option."""
    return {name: value for name, value in options.items() if value is not None and value != []}


def _rule_definition(text: str) -> dict[str, Any]:
    """--definition: JSON inline, or @path to a JSON or YAML file."""
    import yaml

    from clusterbrain.platform.errors import InvalidInput

    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"--definition: cannot read {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise InvalidInput(f"--definition: not JSON or YAML: {reason}") from exc
    if not isinstance(document, dict):
        raise InvalidInput('--definition: must be a document like {"type": "threshold", ...}')
    return document


def _rules_table(rules: Iterable[Any]) -> Table:
    table = Table("id", "enterprise", "device", "name", "priority", "enabled", "definition")
    for rule in rules:
        enabled = "yes" if rule.enabled else f"no {rule.disabled_reason}".strip()
        table.add_row(
            str(rule.id),
            str(rule.enterprise_id),
            rule.device_id,
            rule.name,
            rule.priority,
            enabled,
            json.dumps(rule.definition, ensure_ascii=False),
        )
    return table


def _rule_command(act: Callable[[Session, Principal, AlarmEngine], Any]) -> None:
    """Run one of the alarm API's rule operations as the platform admin; print the rule."""
    from clusterbrain.platform.db import session_scope

    runtime = _admin_context()
    try:
        with _refusals(), session_scope(runtime.sessions) as session:
            rule = act(session, _admin_principal(session), runtime.alarms)
            if rule is not None:
                console.print(_rules_table([rule]))
    finally:
        runtime.close()


@rules_app.command("list")
def rules_list(
    device: Annotated[str | None, typer.Option(help="Only this device's rules.")] = None,
) -> None:
    """Every alarm rule, or one device's."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, _engine: AlarmEngine) -> None:
        rules = cast(Iterable[Any], alarm_api.list_rules(session, principal))
        console.print(_rules_table(r for r in rules if device in (None, r.device_id)))

    _rule_command(act)


@rules_app.command("add")
def rules_add(
    device: Annotated[str, typer.Option(help="Device whose signals the rule watches.")],
    name: Annotated[str, typer.Option(help="Name shown with its alarms.")],
    definition: DefinitionOption = None,
    priority: PriorityOption = None,
    message: MessageOption = None,
    webhook: WebhookOption = None,
    email: EmailOption = None,
    enabled: EnabledOption = None,
) -> None:
    """Add a rule: threshold, rate of change, no data, state duration or expression."""
    from clusterbrain.platform.errors import InvalidInput
    from clusterbrain.production import alarm_api

    given = _given(
        priority=priority, message=message, webhook_url=webhook, emails=email, enabled=enabled
    )

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> Any:
        if definition is None:
            raise InvalidInput("--definition: required, e.g. --definition @rule.yaml")
        data: dict[str, Any] = {"device_id": device, "name": name}
        data["definition"] = _rule_definition(definition)
        data |= given
        body = _checked(alarm_api.AlarmRuleIn, data, RULE_OPTIONS)
        return alarm_api.create_rule(body, session, principal, engine)

    _rule_command(act)


@rules_app.command("edit")
def rules_edit(
    rule_id: RuleId,
    device: Annotated[str | None, typer.Option(help="Move the rule to another device.")] = None,
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    definition: DefinitionOption = None,
    priority: PriorityOption = None,
    message: MessageOption = None,
    webhook: WebhookOption = None,
    email: EmailOption = None,
    enabled: EnabledOption = None,
) -> None:
    """Change what is given and keep the rest; saving re-enables the rule unless --disabled."""
    from clusterbrain.production import alarm_api

    given = _given(
        device_id=device,
        name=name,
        priority=priority,
        message=message,
        webhook_url=webhook,
        emails=email,
        enabled=enabled,
    )

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> Any:
        rule = alarm_api.get_rule(rule_id, session, principal)
        data = alarm_api.AlarmRuleIn.model_validate(rule, from_attributes=True).model_dump()
        data["enabled"] = True  # as the API's PUT: saving a rule disabled by an error retries it
        data |= given
        if definition is not None:
            data["definition"] = _rule_definition(definition)
        body = _checked(alarm_api.AlarmRuleIn, data, RULE_OPTIONS)
        return alarm_api.update_rule(rule_id, body, session, principal, engine)

    _rule_command(act)


@rules_app.command("delete")
def rules_delete(rule_id: RuleId) -> None:
    """Delete a rule and its alarm (the alarm journal keeps its history)."""
    from clusterbrain.production import alarm_api

    def act(session: Session, principal: Principal, engine: AlarmEngine) -> None:
        alarm_api.delete_rule(rule_id, session, principal, engine)
        console.print(f"alarm rule {rule_id} deleted")

    _rule_command(act)
