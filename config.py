"""Settings, built once from the environment (or arguments) and passed down.

Every setting is a frozen dataclass; nothing deep inside the pipeline reads the
environment. ``Settings.from_env()`` is the single place that does.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.infra.kafka_security import KafkaSecurity, KafkaSecurityError
from auditstream.schemas.limits import max_retention_days


class ConfigError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _replication(env: Mapping[str, str], name: str) -> int | None:
    """A replica count, or None (unset, empty or -1) for the broker's default."""
    raw = (env.get(name) or "").strip()
    if raw in ("", "-1"):
        return None
    return _int(env, name, 1, 1)


def _retention(env: Mapping[str, str], name: str, default: int) -> int:
    """Days of retention the store can keep (``schemas.limits``: the TTL must not wrap)."""
    days = _int(env, name, default, 1)
    longest = max_retention_days(datetime.now(UTC))
    if days > longest:
        raise ConfigError(
            f"{name}={days} is longer than the store can keep: the TTL would pass 2106 (the "
            f"end of ClickHouse's DateTime) and wrap, deleting rows at once; at most {longest}"
        )
    return days


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={value} must be positive and finite")
    return value


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """``https://app.example.com,http://localhost:3000``: scheme, host and optional port."""
    out = []
    for part in (env.get(name) or "").split(","):
        origin = part.strip().rstrip("/")
        if not origin:
            continue
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
            raise ConfigError(
                f"{name}: {origin!r} is not an origin such as https://app.example.com"
            )
        out.append(origin)
    return tuple(out)


def _host_instance() -> str:
    """The host name as an instance name (letters, digits, - _ . only)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:100] or "0"


@dataclass(frozen=True)
class Topics:
    """Kafka topic names. Events are keyed ``tenant_id:actor_id`` on every event topic."""

    raw: str = "audit.events.raw"
    normalized: str = "audit.events"
    dead_letter: str = "audit.events.dlq"
    alerts: str = "security.alerts"
    repeats: str = "audit.events.repeats"
    """Records of events dropped as repeats (docs/decisions/0001-accounting-contract.md)."""
    partitions: int = 6
    replication_factor: int | None = None
    """Replicas of every topic we create, ours and Faust's (``AUDITSTREAM_REPLICATION_FACTOR``);
    None: the broker's ``default.replication.factor``."""

    def with_prefix(self, prefix: str) -> Topics:
        """Same layout under a prefix: tests give every run its own topics."""
        return replace(
            self,
            raw=prefix + self.raw,
            normalized=prefix + self.normalized,
            dead_letter=prefix + self.dead_letter,
            alerts=prefix + self.alerts,
            repeats=prefix + self.repeats,
        )


@dataclass(frozen=True)
class LocalKafka:
    """The single-node broker that ``auditstream kafka up`` runs from Maven Central jars."""

    home: Path
    port: int = 19092
    controller_port: int = 19093
    heap_mb: int = 512
    kafka_version: str = "4.1.1"
    sasl_port: int | None = None
    """An extra SASL_PLAINTEXT (PLAIN) listener, for testing authenticated clients."""
    sasl_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(username, password) pairs the SASL listener accepts."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    external: bool
    """True when ``KAFKA_BOOTSTRAP_SERVERS`` names a cluster: we then start nothing."""
    local: LocalKafka
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    """TLS / SASL for that cluster (``KAFKA_SECURITY_PROTOCOL`` ...; see ``kafka_security``)."""

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings every confluent-kafka client of ours starts from."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security.librdkafka()}


@dataclass(frozen=True)
class ClickHouseSettings:
    dsn: str
    database: str = "auditstream"
    retention_days: int = 365
    alert_retention_days: int = 730
    batch_max_rows: int = 20_000
    batch_max_seconds: float = 1.0

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")

    @property
    def embedded_path(self) -> Path | None:
        return Path(self.dsn.removeprefix("chdb://")) if self.embedded else None


@dataclass(frozen=True)
class NormalizerSettings:
    max_event_bytes: int = 65_536
    max_future_skew_seconds: float = 86_400.0
    """How far ahead of the pipeline's clock ``occurred_at`` may be (docs/decisions/0004)."""
    dedup_window_seconds: float = 600.0
    dedup_max_ids: int = 200_000
    batch_size: int = 500
    batch_within_seconds: float = 0.05
    instance: str = "0"
    """Names this normalizer process (``AUDITSTREAM_NORMALIZER_INSTANCE``, default: the host
    name): its transactional id and static group member id. A restart under the same name
    fences its predecessor's open transaction at once; two instances running at the same time
    need two names (containers get theirs from their host names)."""
    transaction_max_events: int = 2_000
    """A transaction covers at most this many raw messages ..."""
    transaction_max_seconds: float = 0.1
    """... or those read within this long after the first (``stream_jobs.normalizer``)."""


@dataclass(frozen=True)
class ApiSettings:
    """The audit-log HTTP API (``auditstream serve``; ``api/``)."""

    enabled: bool = False
    """Whether the sink serves the API too: ``AUDITSTREAM_API_PORT`` is set, or the sink was
    started by ``auditstream serve``."""
    host: str = "127.0.0.1"
    port: int = 8080
    """``AUDITSTREAM_API_PORT``; 0 picks a free port (written to ``api.json`` in the home)."""
    default_range_days: int = 30
    """A request without ``from`` covers the last this many days."""
    max_range_days: int = 400
    """The longest date range one request may cover (``AUDITSTREAM_API_MAX_RANGE_DAYS``)."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API (``AUDITSTREAM_API_CORS_ORIGINS``, comma
    separated), for a viewer served from another origin; none by default."""
    export_job_rows: int = 100_000
    """Exports of this many rows or more run as background jobs, smaller ones stream
    (``AUDITSTREAM_API_EXPORT_JOB_ROWS``)."""


@dataclass(frozen=True)
class Settings:
    home: Path
    kafka: KafkaSettings
    clickhouse: ClickHouseSettings
    topics: Topics = field(default_factory=Topics)
    normalizer: NormalizerSettings = field(default_factory=NormalizerSettings)
    app_id: str = "auditstream"
    detectors_config: Path | None = None
    """TOML file with per-tenant detector settings (None: built-in defaults)."""
    anomaly_model: Path | None = None
    """Anomaly model file from ``auditstream model train`` (None: anomaly scoring off)."""
    api: ApiSettings = field(default_factory=ApiSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("AUDITSTREAM_HOME") or Path.cwd() / ".auditstream").resolve()
        local = LocalKafka(
            home=home / "kafka",
            port=_int(env, "AUDITSTREAM_KAFKA_PORT", 19092, 1),
            controller_port=_int(env, "AUDITSTREAM_KAFKA_CONTROLLER_PORT", 19093, 1),
            heap_mb=_int(env, "AUDITSTREAM_KAFKA_HEAP_MB", 512, 128),
        )
        external = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
        try:
            security = KafkaSecurity.from_env(env)
        except KafkaSecurityError as exc:
            raise ConfigError(str(exc)) from None
        if security.protocol != "PLAINTEXT" and not external:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={security.protocol} is for a cluster named by "
                "KAFKA_BOOTSTRAP_SERVERS; the local broker (`auditstream kafka up`) is plaintext"
            )
        kafka = KafkaSettings(
            bootstrap_servers=external or local.bootstrap,
            external=bool(external),
            local=local,
            security=security,
        )
        dsn = env.get("AUDITSTREAM_CLICKHOUSE_DSN") or f"chdb://{home / 'clickhouse'}"
        if not dsn.startswith(("chdb://", "http://", "https://")):
            raise ConfigError(
                f"AUDITSTREAM_CLICKHOUSE_DSN={dsn!r}: use chdb:///path/to/dir (embedded) "
                "or http(s)://user:password@host:8123 (a ClickHouse server)"
            )
        clickhouse = ClickHouseSettings(
            dsn=dsn,
            database=env.get("AUDITSTREAM_CLICKHOUSE_DATABASE") or "auditstream",
            retention_days=_retention(env, "AUDITSTREAM_RETENTION_DAYS", 365),
            alert_retention_days=_retention(env, "AUDITSTREAM_ALERT_RETENTION_DAYS", 730),
            batch_max_rows=_int(env, "AUDITSTREAM_SINK_BATCH_ROWS", 20_000, 1),
            batch_max_seconds=_float(env, "AUDITSTREAM_SINK_BATCH_SECONDS", 1.0),
        )
        topics = Topics().with_prefix(env.get("AUDITSTREAM_TOPIC_PREFIX", ""))
        topics = replace(
            topics,
            partitions=_int(env, "AUDITSTREAM_PARTITIONS", 6, 1),
            replication_factor=_replication(env, "AUDITSTREAM_REPLICATION_FACTOR"),
        )
        instance = env.get("AUDITSTREAM_NORMALIZER_INSTANCE") or _host_instance()
        if not all(ch.isalnum() or ch in "-_." for ch in instance):
            raise ConfigError(
                f"AUDITSTREAM_NORMALIZER_INSTANCE={instance!r}: use letters, digits, - _ ."
            )
        normalizer = NormalizerSettings(
            max_future_skew_seconds=_float(env, "AUDITSTREAM_MAX_FUTURE_SKEW_SECONDS", 86_400.0),
            instance=instance,
        )
        api_port = (env.get("AUDITSTREAM_API_PORT") or "").strip()
        api = ApiSettings(
            enabled=bool(api_port),
            host=env.get("AUDITSTREAM_API_HOST") or "127.0.0.1",
            port=_int(env, "AUDITSTREAM_API_PORT", 8080, 0),
            max_range_days=_int(env, "AUDITSTREAM_API_MAX_RANGE_DAYS", 400, 1),
            export_job_rows=_int(env, "AUDITSTREAM_API_EXPORT_JOB_ROWS", 100_000, 1),
            cors_origins=_origins(env, "AUDITSTREAM_API_CORS_ORIGINS"),
        )
        return cls(
            home=home,
            kafka=kafka,
            clickhouse=clickhouse,
            topics=topics,
            normalizer=normalizer,
            app_id=env.get("AUDITSTREAM_APP_ID") or "auditstream",
            detectors_config=Path(env["AUDITSTREAM_DETECTORS_CONFIG"])
            if env.get("AUDITSTREAM_DETECTORS_CONFIG")
            else None,
            anomaly_model=Path(env["AUDITSTREAM_ANOMALY_MODEL"])
            if env.get("AUDITSTREAM_ANOMALY_MODEL")
            else None,
            api=api,
        )
