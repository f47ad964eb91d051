"""API schemas of the tenancy hierarchy, users and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clusterbrain.platform.models import Role

Name = Field(min_length=1, max_length=200)


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
    timezone: str = "Asia/Shanghai"
    enterprise_id: int | None = Field(
        default=None, description="Only for platform admins; others create in their enterprise."
    )


class SitePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    timezone: str | None = None


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
    language: str = Field(default="zh-CN", pattern=r"^(zh-CN|en)$")
    timezone: str = "Asia/Shanghai"
    enterprise_id: int | None = None
    cluster_id: int | None = None


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
