"""API schemas of the tenancy hierarchy, users and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clusterbrain.platform.models import Role

Name = Field(min_length=1, max_length=200)


def known_zone(name: str) -> str:
    """An IANA time zone name this machine knows, else a validation error.

    >>> known_zone("Asia/Shanghai")
    'Asia/Shanghai'
    >>> known_zone("Mars/Olympus")
    Traceback (most recent call last):
    ValueError: unknown time zone 'Mars/Olympus' (an IANA name such as Asia/Shanghai)
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)"
        ) from None
    return name


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(known_zone)]
Language = Annotated[str, Field(pattern=r"^(zh-CN|en)$")]


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ClusterIn(BaseModel):
    name: str = Name
    region: str = ""


class ClusterOut(ORMModel):
    id: int
    name: str
    region: str


class EnterpriseIn(BaseModel):
    cluster_id: int
    name: str = Name
    industry: str = ""


class EnterprisePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    industry: str | None = None


class EnterpriseOut(ORMModel):
    id: int
    cluster_id: int
    name: str
    industry: str


class SiteIn(BaseModel):
    name: str = Name
    timezone: TimeZoneName = "Asia/Shanghai"
    enterprise_id: int | None = Field(
        default=None, description="Only for platform admins; others create in their enterprise."
    )


class SitePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: TimeZoneName | None = None


class SiteOut(ORMModel):
    id: int
    enterprise_id: int
    name: str
    timezone: str


class LineIn(BaseModel):
    site_id: int
    name: str = Name


class LinePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class LineOut(ORMModel):
    id: int
    enterprise_id: int
    site_id: int
    name: str


class MachineIn(BaseModel):
    line_id: int
    name: str = Name
    kind: str = ""
    vendor: str = ""
    model: str = ""


class MachinePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = None
    vendor: str | None = None
    model: str | None = None
    line_id: int | None = None


class MachineOut(ORMModel):
    id: int
    enterprise_id: int
    line_id: int
    name: str
    kind: str
    vendor: str
    model: str


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    display_name: str = ""
    role: Role
    password: str = Field(default="", max_length=200)
    language: Language = "zh-CN"
    timezone: TimeZoneName = "Asia/Shanghai"
    enterprise_id: int | None = None
    cluster_id: int | None = None


class MePatch(BaseModel):
    """What users may change of themselves."""

    display_name: str | None = Field(default=None, max_length=200)
    language: Language | None = None
    timezone: TimeZoneName | None = None


class UserOut(ORMModel):
    id: int
    username: str
    display_name: str
    role: Role
    cluster_id: int | None
    enterprise_id: int | None
    language: str
    timezone: str


class TokenIn(BaseModel):
    name: str = Field(default="", max_length=100)


class TokenOut(ORMModel):
    id: int
    user_id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored.")
