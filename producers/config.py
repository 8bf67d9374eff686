"""Producer configuration: one frozen object, from arguments or the environment.

    ProducerConfig.from_env()                              # KAFKA_BOOTSTRAP_SERVERS, ...
    ProducerConfig.from_env(durability="disk")             # environment, one value overridden
    ProducerConfig(bootstrap_servers="kafka:9092", topic="audit.events.raw")

Environment variables (all optional):

=====================================  ============================================
``KAFKA_BOOTSTRAP_SERVERS``            brokers (default: the local broker)
``AUDITSTREAM_TOPIC_PREFIX``           prefix of the raw topic name
``AUDITSTREAM_PRODUCER_DURABILITY``    ``memory`` (default) or ``disk``
``AUDITSTREAM_SPOOL_DIR``              spool folder (default ``$AUDITSTREAM_HOME/spool``)
``AUDITSTREAM_SPOOL_MAX_MB``           spool bound in MiB (default 256)
``AUDITSTREAM_PRODUCER_FSYNC``         ``always``, ``interval`` (default) or ``never``
``AUDITSTREAM_PRODUCER_BUFFER_EVENTS`` events held in memory before spooling (100000)
``AUDITSTREAM_PRODUCER_ON_FULL``       ``block`` (default) or ``raise``
``AUDITSTREAM_PRODUCER_BLOCK_SECONDS`` how long ``emit`` blocks when full (10)
``AUDITSTREAM_MAX_EVENT_BYTES``        largest serialized event (65536)
``AUDITSTREAM_IP_POLICY``              ``keep`` (default), ``drop`` or ``hash``
``AUDITSTREAM_IP_HASH_KEY``            secret key for ``hash`` (required then)
``AUDITSTREAM_REDACT_KEYS``            comma-separated metadata keys to redact
=====================================  ============================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from auditstream.config import ConfigError


class Durability(StrEnum):
    MEMORY = "memory"
    """Fast. Events wait in memory until Kafka acknowledges them: a crash loses those."""
    DISK = "disk"
    """Each event is appended to the spool before ``emit`` returns: survives ``kill -9``."""


class Fsync(StrEnum):
    ALWAYS = "always"
    """fsync before ``emit`` returns: also survives power loss; costs a disk flush per event."""
    INTERVAL = "interval"
    """fsync at most every ``fsync_interval_ms`` (group commit): power loss may lose that long."""
    NEVER = "never"
    """Leave it to the OS: survives a process crash, not a machine crash."""


class OnFull(StrEnum):
    BLOCK = "block"
    RAISE = "raise"


class IpPolicy(StrEnum):
    KEEP = "keep"
    DROP = "drop"
    HASH = "hash"
    """Replace ``ip`` by ``metadata.ip_hash``: a keyed HMAC-SHA256 (hex, 32 chars)."""


@dataclass(frozen=True)
class ProducerConfig:
    bootstrap_servers: str
    topic: str = "audit.events.raw"
    durability: Durability = Durability.MEMORY
    spool_dir: Path = Path(".auditstream") / "spool"
    spool_max_bytes: int = 256 * 1024 * 1024
    segment_bytes: int = 8 * 1024 * 1024
    fsync: Fsync = Fsync.INTERVAL
    fsync_interval_ms: int = 100
    buffer_max_events: int = 100_000
    """Events librdkafka may hold in memory; beyond that (or when the broker is down) the spool."""
    replay_window: int = 20_000
    """Spooled events handed to Kafka at once while replaying."""
    on_full: OnFull = OnFull.BLOCK
    block_timeout_seconds: float = 10.0
    max_event_bytes: int = 65_536
    linger_ms: int = 5
    client_id: str = "auditstream-sdk"
    ip_policy: IpPolicy = IpPolicy.KEEP
    ip_hash_key: str | None = field(default=None, repr=False)
    redact_keys: frozenset[str] = frozenset()
    """Metadata keys (any depth, any case) whose values become ``"[REDACTED]"``."""
    fast_path: bool = True
    """Validate common events without pydantic (same accept/reject rules, 5x cheaper)."""
    librdkafka: Mapping[str, Any] = field(default_factory=dict)
    """Extra librdkafka settings (security.protocol, sasl.* ...); ours win on delivery."""

    def __post_init__(self) -> None:
        for name, enum in (
            ("durability", Durability),
            ("fsync", Fsync),
            ("on_full", OnFull),
            ("ip_policy", IpPolicy),
        ):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                choices = ", ".join(e.value for e in enum)
                raise ConfigError(f"{name}={value!r}: use one of {choices}") from None
        object.__setattr__(self, "spool_dir", Path(self.spool_dir))
        object.__setattr__(self, "redact_keys", frozenset(k.lower() for k in self.redact_keys))
        if not self.bootstrap_servers.strip():
            raise ConfigError("bootstrap_servers is empty: set KAFKA_BOOTSTRAP_SERVERS")
        for name, minimum in (
            ("spool_max_bytes", 1024),
            ("segment_bytes", 1024),
            ("buffer_max_events", 1),
            ("replay_window", 1),
            ("max_event_bytes", 256),
            ("fsync_interval_ms", 1),
            ("linger_ms", 0),
        ):
            if getattr(self, name) < minimum:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least {minimum}")
        if self.segment_bytes > self.spool_max_bytes:  # a small spool: smaller segments
            object.__setattr__(self, "segment_bytes", max(1024, self.spool_max_bytes // 4))
        if self.block_timeout_seconds < 0:
            raise ConfigError("block_timeout_seconds must be 0 or more")
        if self.ip_policy is IpPolicy.HASH and not self.ip_hash_key:
            raise ConfigError(
                "ip_policy='hash' needs a secret ip_hash_key (AUDITSTREAM_IP_HASH_KEY): "
                "an unkeyed hash of an IPv4 address is reversed by trying all 2^32 of them"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ProducerConfig:
        """Settings from ``env`` (default ``os.environ``); keyword arguments win."""
        from auditstream.config import Settings

        env = os.environ if env is None else env
        settings = Settings.from_env(env)
        values: dict[str, Any] = {
            "bootstrap_servers": settings.kafka.bootstrap_servers,
            "topic": settings.topics.raw,
            "spool_dir": Path(env.get("AUDITSTREAM_SPOOL_DIR") or settings.home / "spool"),
            # TLS / SASL from KAFKA_SECURITY_PROTOCOL and friends
            "librdkafka": settings.kafka.security.librdkafka(),
        }
        text = {
            "durability": "AUDITSTREAM_PRODUCER_DURABILITY",
            "fsync": "AUDITSTREAM_PRODUCER_FSYNC",
            "on_full": "AUDITSTREAM_PRODUCER_ON_FULL",
            "ip_policy": "AUDITSTREAM_IP_POLICY",
            "ip_hash_key": "AUDITSTREAM_IP_HASH_KEY",
        }
        for name, var in text.items():
            if env.get(var):
                values[name] = env[var].strip()
        if env.get("AUDITSTREAM_SPOOL_MAX_MB"):
            values["spool_max_bytes"] = _number(env, "AUDITSTREAM_SPOOL_MAX_MB", int) * 1024**2
        if env.get("AUDITSTREAM_PRODUCER_BUFFER_EVENTS"):
            values["buffer_max_events"] = _number(env, "AUDITSTREAM_PRODUCER_BUFFER_EVENTS", int)
        if env.get("AUDITSTREAM_PRODUCER_BLOCK_SECONDS"):
            values["block_timeout_seconds"] = _number(
                env, "AUDITSTREAM_PRODUCER_BLOCK_SECONDS", float
            )
        if env.get("AUDITSTREAM_MAX_EVENT_BYTES"):
            values["max_event_bytes"] = _number(env, "AUDITSTREAM_MAX_EVENT_BYTES", int)
        if env.get("AUDITSTREAM_REDACT_KEYS"):
            values["redact_keys"] = _names(env["AUDITSTREAM_REDACT_KEYS"].split(","))
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(
                f"unknown producer setting(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        values.update(overrides)
        return cls(**values)

    def librdkafka_config(self) -> dict[str, Any]:
        return {
            **self.librdkafka,
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": self.linger_ms,
            "compression.type": "lz4",
            # Never give up on an event: while the broker is away, events wait here (bounded)
            # or in the spool; close() reports what is still undelivered.
            "message.timeout.ms": 0,
            "queue.buffering.max.messages": self.buffer_max_events,
            "message.max.bytes": max(1_000_000, self.max_event_bytes * 2),
        }


def _number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    raw = env[name]
    try:
        return kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None


def _names(items: Iterable[str]) -> frozenset[str]:
    return frozenset(item.strip() for item in items if item.strip())
