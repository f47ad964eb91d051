"""API schemas of device profiles and devices."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from clusterbrain.devices.spec import TagKind

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$"
TAG_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$"


class TagIn(BaseModel):
    name: str = Field(pattern=TAG_NAME_PATTERN)
    unit: str = Field(default="", max_length=32)
    data_type: TagKind = TagKind.FLOAT
    min_value: float | None = None
    max_value: float | None = None
    description_en: str = ""
    description_zh: str = ""
    writable: bool = Field(
        default=False, description="Commands may set it, within min_value..max_value."
    )


class TagOut(TagIn):
    model_config = ConfigDict(from_attributes=True)


class ProfileIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    tags: list[TagIn] = Field(min_length=1)
    enterprise_id: int | None = None


class ProfilePatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = None
    tags: list[TagIn] | None = Field(
        default=None, min_length=1, description="Replaces the whole tag list when given."
    )


class ProfileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
    name: str
    description: str
    tags: list[TagOut]


class DeviceIn(BaseModel):
    profile_id: int
    machine_id: int | None = None
    name: str = Field(default="", max_length=200)
    device_id: str | None = Field(
        default=None, pattern=DEVICE_ID_PATTERN, description="Generated when omitted."
    )
    gateway_id: str | None = Field(
        default=None, description="The edge gateway (a device of the same enterprise) reading it."
    )


class DevicePatch(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    machine_id: int | None = None
    profile_id: int | None = None
    gateway_id: str | None = Field(default=None, description="'' detaches it from its gateway.")


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    enterprise_id: int
    machine_id: int | None
    profile_id: int
    gateway_id: str | None = None
    name: str
    revoked: bool
    online: bool
    last_seen_at: datetime | None
    secret_rotated_at: datetime


class MqttSettings(BaseModel):
    host: str
    port: int
    username: str
    client_id: str
    telemetry_topic: str
    commands_topic: str


class DeviceCredentials(BaseModel):
    device: DeviceOut
    secret: str = Field(description="Shown once; only its hash is stored.")
    mqtt: MqttSettings
    http_ingest_path: str
    sample_payload: dict[str, object]
