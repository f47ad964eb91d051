"""Who is looking: the signed-in user, their enterprise, language and time zone.

The browser's NiceGUI user storage (kept on the server, keyed by a signed cookie) holds only the
user's id; everything else is read from the metadata database for each page, so a revoked or
changed user takes effect at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from nicegui import app

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import User
from clusterbrain.platform.schemas import known_zone
from clusterbrain.platform.service import principal_of
from clusterbrain.platform.tenancy import Principal
from clusterbrain.ui.i18n import translate
from clusterbrain.ui.shared import SharedReads

USER_KEY = "user_id"
DEFAULT_ZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Console:
    """What every page needs: the runtime, the words and the reads its viewers share."""

    runtime: Runtime
    catalogue: Mapping[str, str]
    strict: bool = False
    shared: SharedReads = field(default_factory=SharedReads, compare=False)

    def viewer(self) -> Viewer | None:
        """The signed-in user of this browser, or None."""
        user_id = app.storage.user.get(USER_KEY)
        if not isinstance(user_id, int):
            return None
        with session_scope(self.runtime.sessions) as session:
            user = session.get(User, user_id)
            if user is None:
                return None
            return Viewer(
                principal_of(user),
                user.display_name or user.username,
                user.language if user.language in ("zh-CN", "en") else "zh-CN",
                usable_zone(user.timezone),
                self,
            )


def usable_zone(name: str | None) -> str:
    """The user's zone, or Asia/Shanghai for none or one this machine does not know.

    >>> usable_zone("Europe/Berlin"), usable_zone(""), usable_zone("Mars/Olympus")
    ('Europe/Berlin', 'Asia/Shanghai', 'Asia/Shanghai')
    """
    try:
        return known_zone(name) if name else DEFAULT_ZONE
    except ValueError:
        return DEFAULT_ZONE


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    name: str
    language: str
    timezone: str
    console: Console

    def t(self, text: str) -> str:
        return translate(self.console.catalogue, self.language, text, strict=self.console.strict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
        """A moment in the viewer's time zone; '—' for none."""
        return "—" if moment is None else moment.astimezone(self.zone).strftime(pattern)


def sign_in(user: User) -> None:
    app.storage.user[USER_KEY] = user.id


def sign_out() -> None:
    app.storage.user.pop(USER_KEY, None)
