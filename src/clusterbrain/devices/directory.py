"""The device directory the ingest pipeline asks: cached specs, device auth, last-seen updates."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.devices.models import Device, ProfileTag
from clusterbrain.devices.spec import DeviceSpec, TagKind, TagRule
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.security import verify_secret


class SqlDeviceDirectory:
    """Answers "who is this device and what may it send" from the metadata DB, with a TTL cache.

    Unknown ids are cached too, so that a flood of junk topics does not become a flood of queries.
    """

    def __init__(self, sessions: sessionmaker[Session], *, ttl_s: float = 5.0) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, DeviceSpec | None, str]] = {}
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def lookup(self, device_id: str) -> DeviceSpec | None:
        return self._entry(device_id)[0]

    def authenticate(self, device_id: str, secret: str) -> DeviceSpec | None:
        """The device's spec if the secret is its current one and it is not revoked."""
        spec, secret_hash = self._entry(device_id)
        if spec is None or not spec.active or not verify_secret(secret, secret_hash):
            return None
        return spec

    def invalidate(self, device_id: str | None = None) -> None:
        with self._lock:
            if device_id is None:
                self._cache.clear()
            else:
                self._cache.pop(device_id, None)

    def _entry(self, device_id: str) -> tuple[DeviceSpec | None, str]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(device_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1], cached[2]
        spec, secret_hash = self._load(device_id)
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[device_id] = (now, spec, secret_hash)
        return spec, secret_hash

    def _load(self, device_id: str) -> tuple[DeviceSpec | None, str]:
        with session_scope(self._sessions) as session:
            device = session.get(Device, device_id)
            if device is None:
                return None, ""
            tags = session.scalars(
                select(ProfileTag).where(ProfileTag.profile_id == device.profile_id)
            ).all()
            rules = {
                tag.name: TagRule(TagKind(tag.data_type), tag.min_value, tag.max_value)
                for tag in tags
            }
            # a pending (not yet approved) device may not send data by any path
            active = device.revoked_at is None and device.status != "pending"
            spec = DeviceSpec(device.id, device.enterprise_id, active, rules, device.gateway_id)
            return spec, device.secret_hash

    def touch(self, device_ids: Iterable[str], at: datetime) -> None:
        """Remember that devices were seen; written to the DB by :meth:`flush_last_seen`."""
        with self._lock:
            for device_id in device_ids:
                self._seen[device_id] = at

    def flush_last_seen(self) -> int:
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen:
            return 0
        with session_scope(self._sessions) as session:
            for device_id, at in seen.items():
                session.execute(
                    update(Device).where(Device.id == device_id).values(last_seen_at=at)
                )
        return len(seen)


def utc_from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
