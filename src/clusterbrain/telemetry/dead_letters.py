"""Dead letters: where rejected input is kept with its reason, and how it is read back."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import NotFound
from clusterbrain.platform.service import where_visible
from clusterbrain.platform.tenancy import Principal
from clusterbrain.telemetry.models import DeadLetter

log = logging.getLogger(__name__)
MAX_STORED_PAYLOAD = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    received_at: datetime
    enterprise_id: int | None
    device_id: str
    source: str
    topic: str
    reason: str
    detail: str
    payload: bytes


class SqlDeadLetterSink:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def write(self, records: Sequence[DeadLetterRecord]) -> None:
        if not records:
            return
        with session_scope(self._sessions) as session:
            session.add_all(
                DeadLetter(
                    received_at=r.received_at,
                    enterprise_id=r.enterprise_id,
                    device_id=r.device_id[:200],
                    source=r.source,
                    topic=r.topic[:300],
                    reason=r.reason,
                    detail=r.detail,
                    payload=r.payload[:MAX_STORED_PAYLOAD],
                    payload_size=len(r.payload),
                )
                for r in records
            )


def _scoped_query(principal: Principal) -> Select[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id.desc())
    return where_visible(query, DeadLetter.enterprise_id, principal)


def list_dead_letters(
    session: Session,
    principal: Principal,
    *,
    device_id: str | None = None,
    reason: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> Sequence[DeadLetter]:
    """Newest first; dead letters of unknown devices are visible to platform admins only."""
    query = _scoped_query(principal)
    if device_id:
        query = query.where(DeadLetter.device_id == device_id)
    if reason:
        query = query.where(DeadLetter.reason == reason)
    if before_id is not None:
        query = query.where(DeadLetter.id < before_id)
    return session.scalars(query.limit(limit)).all()


def get_dead_letter(session: Session, principal: Principal, ident: int) -> DeadLetter:
    row = session.scalar(_scoped_query(principal).where(DeadLetter.id == ident))
    if row is None:
        raise NotFound(f"dead letter {ident} not found")
    return row
