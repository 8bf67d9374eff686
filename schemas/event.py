"""Audit event schema, version 1.

One model serves both ends: the producer SDK validates with it before sending, and the
normalizer validates (leniently: verb synonyms, any UTC offset, stray whitespace) with it
after receiving. What it accepts is what the store keeps, exactly:

* timestamps between ``EARLIEST`` and ``LATEST`` (1970-01-01 .. 2105-12-31 UTC): ClickHouse's
  ``DateTime``, which the TTL is computed in, ends in February 2106. The normalizer narrows
  this to the retention window (``stream_jobs/normalize.py``, docs/decisions/0004);
* identifiers without control, bidi-formatting or zero-width characters, and JSON values
  whose integers fit in 64 bits, finite numbers only (``values.py``).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)

from auditstream.schemas.actions import Action, canonical_action
from auditstream.schemas.ids import uuid7
from auditstream.schemas.values import (
    IDENTIFIER_PATTERN,
    MAX_INT,
    MAX_VALUE_DEPTH,
    MIN_INT,
    check_identifier,
    check_json_value,
)

SCHEMA_VERSION: Literal[1] = 1

MAX_ID_CHARS = 256
MAX_NAME_CHARS = 512
MAX_USER_AGENT_CHARS = 1024
MAX_CHANGES = 500
MAX_METADATA_KEYS = 100


class ActorType(StrEnum):
    MEMBER = "member"
    SYSTEM = "system"
    API = "api"
    WORKFLOW = "workflow"
    AGENT = "agent"
    SERVICE = "service"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class Channel(StrEnum):
    WEB = "web"
    MOBILE = "mobile"
    DESKTOP = "desktop"
    API = "api"
    CLI = "cli"
    IMPORT = "import"
    TIMER = "timer"
    KIOSK = "kiosk"
    INTEGRATION = "integration"
    EMAIL = "email"
    SYSTEM = "system"
    OTHER = "other"


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _truncate(limit: int) -> Any:
    def cut(value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if len(value) > limit:
                return value[: limit - 1] + "…"
        return value

    return BeforeValidator(cut)


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _choice(value: Any) -> Any:
    """An enum's text: lower case, and a hidden character named rather than just unknown."""
    if isinstance(value, str) and not isinstance(value, StrEnum):
        value = check_identifier(value.strip().lower())
    return value


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2106, 1, 1, tzinfo=UTC)
"""Exclusive. ClickHouse's ``DateTime`` (TTL arithmetic) wraps on 2106-02-07."""
_YEARS = f"{EARLIEST.year}-{LATEST.year - 1}"


def _to_utc_ms(value: datetime) -> datetime:
    """UTC, millisecond precision. A timestamp without an offset is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"{value.isoformat()} is outside {_YEARS} (UTC), the range the store can keep"
        )
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_ts(value: datetime) -> str:
    """``2026-11-22T01:41:39.123Z``: the wire form of every timestamp."""
    return (
        f"{value.year:04d}-"
        + value.strftime("%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}Z"
    )


UtcMillis = Annotated[
    datetime,
    AfterValidator(_to_utc_ms),
    PlainSerializer(format_ts, return_type=str, when_used="json"),
    # The year as written (before any offset is applied); the model checks the UTC instant.
    Field(json_schema_extra={"pattern": r"^(19[7-9][0-9]|20[0-9][0-9]|210[0-5])-"}),
]
_NO_HIDDEN_CHARACTERS = Field(json_schema_extra={"pattern": IDENTIFIER_PATTERN})


# Identifiers: stripped, 1 .. N characters, none of them hidden (``values.py``).
Identifier = Annotated[
    Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)],
    BeforeValidator(_strip),
    AfterValidator(check_identifier),
    _NO_HIDDEN_CHARACTERS,
]
FieldName = Annotated[
    Annotated[str, Field(min_length=1, max_length=256)],
    BeforeValidator(_strip),
    AfterValidator(check_identifier),
    _NO_HIDDEN_CHARACTERS,
]
OptionalIdentifier = Annotated[
    Annotated[
        Annotated[str, Field(max_length=MAX_ID_CHARS)],
        AfterValidator(check_identifier),
        _NO_HIDDEN_CHARACTERS,
    ]
    | None,
    BeforeValidator(_strip),
]
Name = Annotated[str | None, _truncate(MAX_NAME_CHARS), Field(default=None)]
_VALUE_RULES = (
    f"integers within {MIN_INT} .. {MAX_INT} (kept exactly; send larger ones as strings), "
    f"finite numbers only, nested at most {MAX_VALUE_DEPTH} levels"
)
JsonValue = Annotated[
    Any, AfterValidator(check_json_value), Field(description=f"Any JSON value: {_VALUE_RULES}")
]


def _check_ip(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: absurdly long names
        return False
    return True


def _check_zone(value: str | None) -> str | None:
    value = value.strip() if value else None
    if not value:
        return None
    if not _known_zone(value):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Berlin')")
    return value


def _canonical_action(value: Any) -> Any:
    if isinstance(value, Action) or not isinstance(value, str):
        return value
    check_identifier(value.strip())
    action = canonical_action(value)
    if action is None:
        known = ", ".join(a.value for a in Action)
        raise ValueError(f"unknown action {value!r}; use one of: {known}")
    return action


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Actor(_Model):
    """Who did it."""

    id: Identifier
    type: Annotated[ActorType, BeforeValidator(_choice)] = ActorType.MEMBER
    display_name: Name = None
    email: Annotated[str | None, _truncate(320)] = None
    timezone: Annotated[str | None, AfterValidator(_check_zone)] = Field(
        default=None, description="IANA time zone of the actor, when known"
    )


class Resource(_Model):
    """What it was done to."""

    type: Annotated[
        Annotated[str, Field(min_length=1, max_length=128)],
        BeforeValidator(_lower),
        AfterValidator(check_identifier),
        _NO_HIDDEN_CHARACTERS,
    ]
    id: Identifier
    name: Name = None


class FieldChange(_Model):
    """One field's value before and after (any JSON value; None when absent)."""

    field: FieldName
    old: JsonValue = None
    new: JsonValue = None


class Location(_Model):
    """Where the actor was. Sent by the producer when it knows; wins over IP geolocation."""

    country: Annotated[str | None, BeforeValidator(lambda v: _strip(v) or None)] = Field(
        default=None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2"
    )
    region: Name = None
    city: Name = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None


class AuditEvent(_Model):
    """Who did what, to which resource, when, from where, with what outcome."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(
        default_factory=uuid7, description="Unique, time-ordered (UUIDv7) event id"
    )
    occurred_at: UtcMillis = Field(
        description=(
            "When it happened, stamped at the source (UTC). The store keeps "
            f"{EARLIEST.date()} .. {(LATEST - timedelta(days=1)).date()}; the pipeline "
            "takes it only within the retention window (AUDITSTREAM_RETENTION_DAYS) and at "
            "most AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS ahead of its clock"
        )
    )
    received_at: UtcMillis | None = Field(
        default=None, description="When the pipeline received it (UTC); set by the normalizer"
    )
    tenant_id: Identifier
    actor: Actor
    action: Annotated[Action, BeforeValidator(_canonical_action)]
    resource: Resource
    outcome: Annotated[Outcome, BeforeValidator(_choice)] = Outcome.SUCCESS
    ip: Annotated[str | None, AfterValidator(_check_ip)] = None
    session_id: OptionalIdentifier = None
    user_agent: Annotated[str | None, _truncate(MAX_USER_AGENT_CHARS)] = None
    channel: Annotated[Channel, BeforeValidator(_choice)] = Channel.OTHER
    location: Location | None = None
    changes: list[FieldChange] = Field(default_factory=list, max_length=MAX_CHANGES)
    correlation_id: OptionalIdentifier = Field(
        default=None, description="Shared by every event of one cascade or request"
    )
    parent_event_id: uuid.UUID | None = Field(
        default=None, description="The event that caused this one (cascade changes)"
    )
    metadata: Annotated[dict[str, Any], AfterValidator(check_json_value)] = Field(
        default_factory=dict,
        max_length=MAX_METADATA_KEYS,
        description=f"Free-form context; values are any JSON: {_VALUE_RULES}",
    )

    @property
    def key(self) -> bytes:
        """Kafka key: one actor's events share a partition, so they keep their order."""
        return partition_key(self.tenant_id, self.actor.id)


_KEY_ESCAPE = re.compile(r"[:\\]")


def partition_key(tenant_id: str, actor_id: str) -> bytes:
    """``tenant:actor`` with ``:`` and ``\\`` escaped, so distinct pairs never share a key."""

    def esc(part: str) -> str:
        return _KEY_ESCAPE.sub(lambda m: "\\" + m.group(0), part)

    return f"{esc(tenant_id)}:{esc(actor_id)}".encode()
