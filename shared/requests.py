"""Request bodies, validated with pydantic in strict mode.

Types, unknown fields and upper bounds are checked here (invalid_input), and so is
the one lower bound that holds whatever the egg: an allocation is never negative
(below_minimum). The egg's own minimums and the absolute ones are checked by the
rules (below_minimum), so the caller learns which minimum it missed. Parsing any
body gives a model, invalid_input or below_minimum, nothing else.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from shared.databases import DatabaseEngine
from shared.errors import BelowMinimum, CorralError, InvalidInput
from shared.models import RestartPolicy
from shared.states import PowerSignal
from shared.vm import is_public_key_line


def _two_decimals(value: float) -> float:
    hundredths = value * 100
    if not math.isfinite(hundredths):  # -1.7e308 is finite, a hundred times it is not
        raise ValueError("is out of range")
    if abs(hundredths - round(hundredths)) > 1e-6:
        raise ValueError("must have at most two decimal places")
    return value


# Control characters (Cc: NUL, tab, U+0085 ...) and invisible formatting ones (Cf:
# U+202E right-to-left override, zero-width joiners ...) would let one name pose as
# another.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})


def visible_text(value: str) -> str:
    """Refuse text holding control or invisible formatting characters."""
    if any(unicodedata.category(ch) in HIDDEN_CATEGORIES for ch in value):
        raise ValueError("must not contain control or invisible formatting characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(visible_text),
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]
Cores = Annotated[float, Field(le=1024), AfterValidator(_two_decimals)]
RamMb = Annotated[int, Field(le=16 * 1024 * 1024)]
StorageMb = Annotated[int, Field(le=1024 * 1024 * 1024)]
Io = Annotated[int, Field(le=1000)]
SmallCount = Annotated[int, Field(le=1000)]

BELOW_MINIMUM = "below_minimum"


Number = TypeVar("Number", int, float)


def _not_negative(value: Number) -> Number:
    if value < 0:
        raise PydanticCustomError(BELOW_MINIMUM, "must not be negative")
    return value


# A tenant's allocation: never negative, whatever the egg (the rules add the egg's
# minimums and the absolute ones).
NotNegative = AfterValidator(_not_negative)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value  # the rules read a date without an offset as UTC
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
        raise ValueError("is out of the range of dates") from exc


# A date with an offset, converted to UTC here (where it can fail as invalid_input)
# rather than in the first comparison with a UTC date (an OverflowError, a 500).
Instant = Annotated[datetime, AfterValidator(_utc)]


def _public_key(value: str) -> str:
    if not is_public_key_line(value):
        raise ValueError("must be one OpenSSH public key line: '<type> <base64> [comment]'")
    return value


# VM options (qemu eggs and environments): keys cloud-init installs, guest ports to expose.
SshKey = Annotated[str, AfterValidator(_public_key)]
SshKeys = Annotated[list[SshKey], Field(max_length=32)]
GuestPort = Annotated[int, Field(ge=1, le=65535)]
GuestPorts = Annotated[list[GuestPort], Field(max_length=32)]


class Strict(BaseModel):
    # defer_build: a model's validator is built when it first validates, not at import;
    # a Lambda's cold start pays only for the models its first request uses (importing
    # every request model built them all: a third of the HTTP entry's import time).
    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, frozen=True, defer_build=True
    )


class ResourceFields(Strict):
    """Every pooled resource, each optional: missing values mean 'keep' or 'egg default'."""

    cpu_cores: Annotated[Cores, NotNegative] | None = None
    ram_mb: Annotated[RamMb, NotNegative] | None = None
    storage_mb: Annotated[StorageMb, NotNegative] | None = None
    io: Annotated[Io, NotNegative] | None = None
    ports: Annotated[SmallCount, NotNegative] | None = None
    databases: Annotated[SmallCount, NotNegative] | None = None
    backups: Annotated[SmallCount, NotNegative] | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


TEN_YEARS = 10 * 365 * 24 * 3600
Lifetime = Annotated[int, Field(ge=1, le=TEN_YEARS)]


class LeaseFields(Strict):
    """A lifetime in seconds from now, or an absolute expiry (ISO 8601); not both."""

    lifetime: Lifetime | None = None
    expires_at: Instant | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LeaseFields:
        if self.lifetime is not None and self.expires_at is not None:
            raise ValueError("give lifetime or expires_at, not both")
        return self


# A tenant's values of its egg's variables: the rules check each against the egg
# (shared/variables.py); here only the shape (env names, JSON strings, integers, booleans).
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EnvValue = Annotated[str, StringConstraints(max_length=4096)] | int | bool
Environment = Annotated[dict[EnvName, EnvValue], Field(max_length=64)]


class ContainerCreate(ResourceFields, LeaseFields):
    name: Name
    egg_id: Id
    environment: Environment | None = None
    restart_policy: RestartPolicy = RestartPolicy.NEVER
    # qemu eggs only (`ports` is the pooled resource count, so guest ports have their own name)
    ssh_keys: SshKeys | None = None
    guest_ports: GuestPorts | None = None
    deny_outgoing: bool | None = None

    def vm_given(self) -> dict[str, Any]:
        """The VM options the caller gave, by their names in a workload's `vm`."""
        given = {
            "ssh_keys": self.ssh_keys,
            "ports": self.guest_ports,
            "deny_outgoing": self.deny_outgoing,
        }
        return {k: v for k, v in given.items() if v is not None}

    def given(self) -> dict[str, Any]:
        """The resource fields the caller gave."""
        return ResourceFields.model_validate(
            self.model_dump(include=set(ResourceFields.model_fields), exclude_none=True)
        ).given()


class LeaseRequest(LeaseFields):
    """POST /containers/:id/lease: renew (or shorten) the lease."""

    @model_validator(mode="after")
    def _something(self) -> LeaseRequest:
        if self.lifetime is None and self.expires_at is None:
            raise ValueError("give lifetime (seconds) or expires_at")
        return self


class ContainerUpdate(Strict):
    name: Name | None = None
    egg_id: Id | None = None
    resources: ResourceFields | None = None
    environment: Environment | None = None

    def is_empty(self) -> bool:
        return (
            self.name is None
            and self.egg_id is None
            and not (self.resources and self.resources.given())
            and not self.environment
        )


class TenantDatabaseCreate(Strict):
    """POST /containers/:id/databases."""

    name: Name
    engine: DatabaseEngine = DatabaseEngine.POSTGRES


class PowerRequest(Strict):
    signal: PowerSignal


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], raw: bytes | str) -> M:
    """Parse the JSON request body `raw` and validate it as `model`, in one pass,
    turning pydantic's report into invalid_input (below_minimum when all it found
    is negative allocations)."""
    try:
        # JSON mode: strict about JSON types (no "1" for 1, no true for 1) while
        # enums accept their values.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise _invalid(errors) from exc


def _invalid(errors: list[ErrorDetails]) -> CorralError:
    top = errors[0]
    if top["type"] == "json_invalid":
        # The parser's own words (`Invalid JSON: recursion limit exceeded at ...`).
        if "recursion limit" in top["msg"]:
            return InvalidInput("Request body is nested too deeply.")
        return InvalidInput("Request body is not valid JSON.")
    if top["type"] == "model_type" and not top["loc"]:
        return InvalidInput("Request body must be a JSON object.")
    problems = [
        {
            "loc": ".".join(str(part) for part in err["loc"]) or "body",
            "type": err["type"],
            "message": err["msg"],
        }
        for err in errors
    ]
    summary = "; ".join(f"{p['loc']}: {p['message']}" for p in problems)
    if all(err["type"] == BELOW_MINIMUM for err in errors):
        return BelowMinimum(f"Request body is below a minimum: {summary}", details=problems)
    return InvalidInput(f"Request body failed validation: {summary}", details=problems)


class BackupCreate(Strict):
    """POST /containers/:id/backups (the body is optional)."""

    name: Name | None = None
