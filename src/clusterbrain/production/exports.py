"""Rows of the production downloads: KPIs per period, state intervals, the alarm journal.

Shared by the API's CSV/Excel routes and the ``clusterbrain export`` command, so that both write
the same columns. Journal rows are read in pages, each in a short session of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.service import where_visible
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.calendar import epoch_us, from_epoch_us
from clusterbrain.production.models import AlarmEvent
from clusterbrain.production.oee_service import KpiResult
from clusterbrain.production.states import StateInterval

KPI_EXPORT_COLUMNS = (
    "from",
    "to",
    "planned_busy_time_s",
    "actual_production_time_s",
    "availability",
    "effectiveness",
    "quality_ratio",
    "oee",
    "produced",
    "good",
    "scrap",
    "mtbf_s",
    "mttr_s",
    "energy_kwh",
    "energy_per_good_unit_kwh",
)
STATE_EXPORT_COLUMNS = ("from", "to", "state", "seconds")
ALARM_EXPORT_COLUMNS = (
    "at",
    "alarm_id",
    "rule",
    "device_id",
    "priority",
    "event",
    "from_state",
    "to_state",
    "user",
    "detail",
)


def kpi_rows(results: Iterable[KpiResult]) -> Iterator[tuple[Any, ...]]:
    for r in results:
        yield (
            r.start,
            r.end,
            r.elements.planned_busy_time,
            r.elements.actual_production_time,
            r.kpis.availability,
            r.kpis.effectiveness,
            r.kpis.quality_ratio,
            r.kpis.oee,
            r.elements.produced_quantity,
            r.elements.good_quantity,
            r.elements.scrap_quantity,
            r.kpis.mtbf,
            r.kpis.mttr,
            r.elements.energy_kwh,
            r.kpis.energy_per_good_unit,
        )


def state_rows(intervals: Iterable[StateInterval]) -> Iterator[tuple[Any, ...]]:
    return ((i.start, i.end, i.state.value, i.seconds) for i in intervals)


def alarm_journal_query(
    principal: Principal,
    start: datetime,
    end: datetime,
    *,
    device_id: str | None = None,
    priority: str | None = None,
) -> Select[Any]:
    """The caller's journal lines in ``[start, end)``, optionally of one device or priority."""
    query = where_visible(select(AlarmEvent), AlarmEvent.enterprise_id, principal).where(
        AlarmEvent.ts_us >= epoch_us(start), AlarmEvent.ts_us < epoch_us(end)
    )
    if device_id is not None:
        query = query.where(AlarmEvent.device_id == device_id)
    if priority:
        query = query.where(AlarmEvent.priority == priority)
    return query


def alarm_rows(
    sessions: sessionmaker[Session], query: Select[Any], page: int = 5_000
) -> Iterator[tuple[Any, ...]]:
    """The selected journal lines, oldest first, read in pages (keyset on time and id).

    Each page is read in a short session of its own: a download is streamed after the request's
    session has closed, and a long history never sits in memory.
    """
    after: tuple[int, int] = (-(2**62), 0)
    while True:
        with session_scope(sessions) as session:
            rows = session.scalars(
                query.where(
                    or_(
                        AlarmEvent.ts_us > after[0],
                        and_(AlarmEvent.ts_us == after[0], AlarmEvent.id > after[1]),
                    )
                )
                .order_by(AlarmEvent.ts_us, AlarmEvent.id)
                .limit(page)
            ).all()
        if not rows:
            return
        for row in rows:
            yield (
                from_epoch_us(row.ts_us),
                row.alarm_id,
                row.rule_name,
                row.device_id,
                row.priority,
                row.event,
                row.from_state,
                row.to_state,
                row.user,
                row.detail,
            )
        after = (rows[-1].ts_us, rows[-1].id)
