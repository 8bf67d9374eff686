"""``auditstream status``: what runs, how far behind it is, what came in and where it went.

Every section is gathered on its own: Kafka down or the store unreachable makes that section
say so in one sentence (``errors``), the others are still reported.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from auditstream.config import Settings
from auditstream.ops import health
from auditstream.ops.lag import LagError, pipeline_groups, pipeline_lag
from auditstream.pipeline import ROLES
from auditstream.sinks import query, tables
from auditstream.sinks.query import QueryError, literal
from auditstream.sinks.store import StoreUnavailable

WINDOWS = (("minute", 60), ("hour", 3600))


@dataclass
class Process:
    role: str
    pid: int | None
    running: bool
    metrics: str | None
    alive: bool | None
    ready: bool | None
    detail: str
    restarts: int | None = None
    uptime_seconds: float | None = None
    api: str | None = None
    """The HTTP API's URL, when the service serves it (``health.add_to_record(api=...)``)."""


@dataclass
class GroupLag:
    role: str
    group: str
    topic: str
    partitions: int
    lag: int
    max_partition_lag: int


@dataclass
class TableInfo:
    table: str
    rows: int
    bytes_on_disk: int
    retention_days: int | None


@dataclass
class Status:
    kafka: str
    store: str
    supervisor: int | None = None
    processes: list[Process] = field(default_factory=list)
    lag: list[GroupLag] = field(default_factory=list)
    flow: dict[str, dict[str, int | None]] = field(default_factory=dict)
    """``{"minute": {"in": n, "stored": n, "dead_lettered": n}, "hour": {...}}``."""
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    tables: list[TableInfo] = field(default_factory=list)
    last_checkpoint: str | None = None
    """When the newest signed chain-heads checkpoint in the local file was made (UTC)."""
    checkpoints: int = 0
    """How many checkpoints the local file holds."""
    errors: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.errors and all(p.running and p.alive is not False for p in self.processes)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "healthy": self.healthy})


def _probe(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            doc = json.loads(response.read())
            return True, str(doc.get("detail", "ok"))
    except urllib.error.HTTPError as exc:
        try:
            return False, str(json.loads(exc.read()).get("detail", exc.reason))
        except ValueError:
            return False, str(exc.reason)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, f"no answer ({getattr(exc, 'reason', exc)})"


def processes(settings: Settings) -> tuple[int | None, list[Process]]:
    """The supervisor (``auditstream run``), if any, and each service's own record."""
    supervisor: int | None = None
    restarts: dict[str, int] = {}
    try:
        state = json.loads((settings.home / "run.json").read_text())
        os.kill(int(state["pid"]), 0)
        supervisor = int(state["pid"])
        restarts = {r: int(c.get("restarts", 0)) for r, c in state["children"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    out = []
    for role in ROLES:
        record = health.read_record(settings, role)
        if record is None:
            out.append(
                Process(role, None, False, None, None, None, "not running", restarts.get(role))
            )
            continue
        metrics = record.get("metrics")
        alive = ready = None
        detail = "running (no metrics port)"
        if metrics:
            alive, why = _probe(metrics + "/healthz")
            ready, detail = _probe(metrics + "/readyz")
            detail = why if not alive else detail
        out.append(
            Process(
                role,
                int(record["pid"]),
                True,
                metrics,
                alive,
                ready,
                detail,
                restarts.get(role),
                round(time.time() - float(record.get("started_at", time.time())), 1),
                record.get("api"),
            )
        )
    return supervisor, out


def lag(settings: Settings) -> list[GroupLag]:
    parts = pipeline_lag(settings, timeout=5.0)
    out = []
    for role, group, topic in pipeline_groups(settings):
        mine = [p for p in parts if p.group == group and p.topic == topic]
        if mine:
            out.append(
                GroupLag(
                    role,
                    group,
                    topic,
                    len(mine),
                    sum(p.lag for p in mine),
                    max(p.lag for p in mine),
                )
            )
    return out


def _messages_since(settings: Settings, topic: str, seconds: int) -> int:
    """Messages appended to ``topic`` in the last ``seconds`` (from offsets by time)."""
    consumer = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"status-{uuid.uuid4().hex[:8]}",
            "log_level": 0,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0
        since = int((time.time() - seconds) * 1000)
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, since) for p in meta.partitions], timeout=5
        )
        total = 0
        for tp in found:
            _, hi = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=5)
            if tp.offset >= 0:
                total += hi - tp.offset
        return total
    finally:
        consumer.close()


def flow_from_kafka(settings: Settings) -> dict[str, dict[str, int | None]]:
    """Raw messages in, by offsets (producers of the raw topic are not transactional; a
    ``dlq replay``'s commit marker counts as one)."""
    return {name: {"in": _messages_since(settings, settings.topics.raw, s)} for name, s in WINDOWS}


def from_store(settings: Settings, status: Status) -> None:
    ch = settings.clickhouse
    stored = query.run(
        ch,
        "SELECT countIf(stored_at >= now64(3) - INTERVAL 1 MINUTE), count() FROM audit_events "
        "WHERE stored_at >= now64(3) - INTERVAL 1 HOUR",
    ).rows[0]
    dead = query.run(
        ch,
        "SELECT countIf(failed_at >= now64(3) - INTERVAL 1 MINUTE), count() "
        "FROM audit_dead_letters FINAL WHERE failed_at >= now64(3) - INTERVAL 1 HOUR",
    ).rows[0]
    for (name, _), n, d in zip(WINDOWS, stored, dead, strict=True):
        status.flow.setdefault(name, {}).update(stored=int(n), dead_lettered=int(d))
    status.dead_letters_by_reason = {
        str(r): int(n)
        for r, n in query.run(
            ch,
            "SELECT reason, count() AS n FROM audit_dead_letters FINAL GROUP BY reason "
            "ORDER BY n DESC",
        ).rows
    }
    db = literal(ch.database)
    sizes = {
        str(t): (int(r), int(b))
        for t, r, b in query.run(
            ch,
            "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts "
            f"WHERE database = {db} AND active GROUP BY table",
        ).rows
    }
    engines = {
        str(n): str(e)
        for n, e in query.run(
            ch, f"SELECT name, engine_full FROM system.tables WHERE database = {db}"
        ).rows
    }
    for name in (
        tables.EVENTS_TABLE,
        tables.ALERTS_TABLE,
        tables.DEAD_LETTERS_TABLE,
        tables.REPEATS_TABLE,
    ):
        if name not in engines:
            continue
        rows, size = sizes.get(name, (0, 0))
        status.tables.append(
            TableInfo(name, rows, size, tables.parse_retention_days(engines[name]))
        )


def last_checkpoint(settings: Settings) -> tuple[str | None, int]:
    """The newest signed heads checkpoint in the local file, and how many the file holds
    (read only; ``auditstream verify`` checks them)."""
    from auditstream.integrity.checkpoints import CheckpointLog, last_signed_at

    docs = CheckpointLog.at_home(settings.home).read()
    return last_signed_at(docs), len(docs)


def gather(settings: Settings) -> Status:
    from auditstream.sinks.service import where

    status = Status(kafka=settings.kafka.bootstrap_servers, store=where(settings.clickhouse))
    status.supervisor, status.processes = processes(settings)
    status.last_checkpoint, status.checkpoints = last_checkpoint(settings)
    try:
        status.lag = lag(settings)
        status.flow = flow_from_kafka(settings)
    except (LagError, KafkaException) as exc:
        reason = exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
        status.errors.append(
            f"Kafka at {settings.kafka.bootstrap_servers} did not answer ({reason}); "
            "is the broker running? (`auditstream kafka status`)"
        )
    try:
        from_store(settings, status)
    except (QueryError, StoreUnavailable) as exc:
        status.errors.append(f"the store at {status.store} did not answer: {exc}")
    return status
