"""Request and response bodies of the identity routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from auxilio.policy.roles import Role
from auxilio.server.validation import LoginEmail, Name, Password, ShortName


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Patch(Strict):
    """A partial update: a field left out is unchanged; an explicit null is refused, since none
    of these columns can be empty (it would otherwise reach the database and fail there);
    only the ``nullable`` ones take a null, which clears them."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_nulls(self) -> Patch:
        nulls = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None and name not in self.nullable
        )
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null; leave it out to keep it")
        return self


class LoginIn(Strict):
    email: LoginEmail
    password: Password
    # The organisation's slug; needed only when the address has accounts in several.
    organisation: str | None = Field(default=None, min_length=1, max_length=63)
    totp_code: str | None = Field(default=None, max_length=16)
    recovery_code: str | None = Field(default=None, max_length=32)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organisation_id: uuid.UUID
    email: str
    display_name: str
    role: Role
    is_active: bool
    timezone: str
    skills: list[str]
    languages: list[str]
    working_hours: dict[str, list[str]]
    mfa_enrolled: bool
    created_at: datetime
    team: str | None = None


class LoginOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut
    mfa_enrolment_required: bool
    # An enrolment was started (a provisioning URI exists): a first code from it completes it.
    totp_enrolment_started: bool = False
    recovery_codes: list[str]
    # Things an admin must act on, e.g. "policy_review_overdue: ..." (R19).
    warnings: list[str] = []


class TotpEnrolOut(BaseModel):
    provisioning_uri: str


class TotpConfirmIn(Strict):
    code: str = Field(max_length=16)


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class TokenIn(Strict):
    name: ShortName
    scopes: list[str] | None = None
    ttl_days: int = Field(default=90, ge=1, le=366)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str] | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreatedOut(TokenOut):
    token: str


class UserCreateIn(Strict):
    email: str = Field(max_length=254)
    display_name: Name
    role: Role
    password: Password
    timezone: str = Field(default="UTC", max_length=64)
    skills: list[ShortName] = Field(default_factory=list, max_length=50)
    languages: list[ShortName] = Field(default_factory=list, max_length=20)
    working_hours: dict[str, list[str]] = Field(default_factory=dict)


class UserCreatedOut(UserOut):
    totp_provisioning_uri: str | None = None


class UserUpdateIn(Patch):
    display_name: Name | None = None
    role: Role | None = None
    is_active: bool | None = None


class StaffProfileIn(Patch):
    timezone: str | None = Field(default=None, max_length=64)
    skills: list[ShortName] | None = Field(default=None, max_length=50)
    languages: list[ShortName] | None = Field(default=None, max_length=20)
    working_hours: dict[str, list[str]] | None = None
    # The KPI team slice and the person's own cost rate (over their role's); null clears them.
    nullable: ClassVar[frozenset[str]] = frozenset({"team", "hourly_cost_cents"})
    team: ShortName | None = None
    hourly_cost_cents: StrictInt | None = Field(default=None, ge=0, le=10_000_000)


class StaffProfileOut(UserOut):
    """A staff profile as its managers see it: with the person's own cost rate."""

    hourly_cost_cents: int | None = None


class TrainingIn(Strict):
    training_id: ShortName
    title: Name
    completed_at: AwareDatetime
    expires_at: AwareDatetime | None = None


class TrainingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    training_id: str
    title: str
    completed_at: AwareDatetime
    expires_at: datetime | None


class OrganisationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    slug: str
    name: str
    mfa_required_for_staff: bool
    created_at: datetime
